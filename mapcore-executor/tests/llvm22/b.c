/* The second object of the a.c + b.c program: a cross-object call through a function
 * pointer, a callback from libc (qsort) into JIT'd code, and read-only data. */
#include <stdlib.h>

static int add(int acc, int x) { return acc + x; }

int helper_sum(int n) {
  int (*op)(int, int) = add;
  int acc = 0;
  for (int i = 1; i <= n; i++)
    acc = op(acc, i);
  return acc;
}

static int compare_ints(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* Sorts with libc's qsort calling back into this object's comparator. */
void helper_sort(int *values, size_t count) {
  qsort(values, count, sizeof *values, compare_ints);
}

const char *const helper_message = "rodata-ok";
