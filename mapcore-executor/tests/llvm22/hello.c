/* The smallest real program: stdio from libc, argc from the controller, an exit code. */
#include <stdio.h>

int main(int argc, char **argv) {
  (void)argv;
  printf("hello from jit, argc=%d\n", argc);
  return 42;
}
