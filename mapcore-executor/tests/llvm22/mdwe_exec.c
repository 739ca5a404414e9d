/* mdwe_exec PROGRAM ARGS...: runs PROGRAM with memory-deny-write-execute on
 * (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)), which execve keeps: no mapping of the
 * program may ever gain execute permission through mprotect. Exits 127 if MDWE cannot be set
 * or PROGRAM cannot be run. */
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: mdwe_exec PROGRAM [ARGS...]\n");
    return 127;
  }
  if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0L, 0L, 0L) != 0) {
    fprintf(stderr, "mdwe_exec: prctl(PR_SET_MDWE): %s\n", strerror(errno));
    return 127;
  }
  execv(argv[1], argv + 1);
  fprintf(stderr, "mdwe_exec: %s: %s\n", argv[1], strerror(errno));
  return 127;
}
