// C++ exceptions through JIT'd code: one thrown and caught in this object, one thrown in
// ex_thrower.cpp and caught here, so the unwinder must find both objects' EH frames.
#include <cstdio>
#include <stdexcept>
#include <string>

void throw_far(const std::string &what); // ex_thrower.cpp

static void throw_near() { throw std::runtime_error("boom"); }

int main() {
  int caught = 0;
  try {
    throw_near();
  } catch (const std::runtime_error &e) {
    std::printf("caught %s\n", e.what());
    caught++;
  }
  try {
    throw_far("far");
  } catch (const std::exception &e) {
    std::printf("caught %s across objects\n", e.what());
    caught++;
  }
  return caught == 2 ? 7 : 1;
}
