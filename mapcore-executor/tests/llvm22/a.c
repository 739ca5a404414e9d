/* Several objects and a large zero-fill section: an 8 MiB bss that must read as zero, data
 * that must hold its initial value, calls into b.c, and libc calling back into b.c. */
#include <stdio.h>
#include <string.h>

int helper_sum(int n);
void helper_sort(int *values, unsigned long count);
extern const char *const helper_message;

static char big[8 << 20];
int counter = 41;

int main(int argc, char **argv) {
  (void)argv;
  for (unsigned long i = 0; i < sizeof big; i += 4096)
    if (big[i] != 0 || big[sizeof big - 1] != 0)
      return 1;
  memset(big, 0x5a, sizeof big);
  if (big[12345] != 0x5a)
    return 2;
  counter++;
  int sum = helper_sum(10);
  int values[] = {5, 3, 9, 1, 7, 2};
  helper_sort(values, sizeof values / sizeof *values);
  printf("msg=%s counter=%d sum=%d argc=%d sorted=%d%d%d%d%d%d\n", helper_message, counter,
         sum, argc, values[0], values[1], values[2], values[3], values[4], values[5]);
  return (counter == 42 && sum == 55 && strcmp(helper_message, "rodata-ok") == 0 &&
          values[0] == 1 && values[5] == 9)
             ? 0
             : 3;
}
