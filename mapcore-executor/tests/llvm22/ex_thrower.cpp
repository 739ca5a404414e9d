// The other object of ex.cpp: throws through its own frames into ex.cpp's handler.
#include <stdexcept>
#include <string>

__attribute__((noinline)) static void deeper(const std::string &what) {
  throw std::logic_error(what);
}

void throw_far(const std::string &what) {
  deeper(what);
  __builtin_unreachable();
}
