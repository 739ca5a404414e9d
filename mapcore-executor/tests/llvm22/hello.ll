; For lli remote MCJIT: text IR, so no clang is needed.
@msg = private unnamed_addr constant [15 x i8] c"hello from lli\00"

declare i32 @puts(ptr)

define i32 @main() {
  %r = call i32 @puts(ptr @msg)
  ret i32 42
}
