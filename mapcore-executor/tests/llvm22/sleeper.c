/* Says it is running, then waits: run.sh kills the executor while this session is live. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
  printf("ready\n");
  fflush(stdout);
  sleep(60);
  return 0;
}
