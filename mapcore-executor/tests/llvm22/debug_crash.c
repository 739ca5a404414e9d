/* Crashes three JIT'd calls deep, for the gdb check: the backtrace must name each function
 * with its file and line (the lines marked LINE-name); a breakpoint on middle stops at
 * LINE-middle-entry. */
int deep(volatile int *p) {
  return *p + 1; /* LINE-deep */
}

int middle(int x) {
  volatile int *p = x > 100 ? (volatile int *)&x : 0; /* LINE-middle-entry */
  return deep(p) * 2; /* LINE-middle */
}

int main(int argc, char **argv) {
  (void)argv;
  return middle(argc); /* LINE-main */
}
