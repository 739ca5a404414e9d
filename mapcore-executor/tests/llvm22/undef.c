/* Calls a function nobody defines: linking fails with "Symbols not found: [ nope ]". */
int nope(void);

int main(void) { return nope(); }
