/* Crashes on purpose: the executor dies and the controller must report it, not hang. */
int main(void) {
  volatile int *volatile p = 0;
  return *p;
}
