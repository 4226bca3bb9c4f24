# Shared by scripts/embedded-check.sh and scripts/embedded-sweep.sh (sourced, not run).
# Builders and runners of embedded/harness.c for each target; none installs anything.

M4_CFLAGS="-O2 -ffp-contract=fast -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard -ffunction-sections -fdata-sections"
STRICT="-std=c99 -Wall -Wextra -Werror -pedantic"
EMB="$ROOT/embedded"

have() { command -v "$1" >/dev/null 2>&1; }

# have_target TARGET: whether its tools are installed; else says which Debian package is
# missing (on stderr) and returns 1.
have_target() {
  local missing=()
  case $1 in
    gcc) have gcc || missing+=(gcc) ;;
    clang) have clang || missing+=(clang) ;;
    sanitizers) have gcc || missing+=(gcc) ;;
    a53)
      have aarch64-linux-gnu-gcc || missing+=(gcc-aarch64-linux-gnu)
      have qemu-aarch64 || missing+=(qemu-user) ;;
    m4)
      if have arm-none-eabi-gcc; then
        [ -f "$(arm-none-eabi-gcc -print-file-name=rdimon.specs)" ] \
          || missing+=(libnewlib-arm-none-eabi)
      else
        missing+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
      fi
      have qemu-system-arm || missing+=(qemu-system-arm) ;;
  esac
  if [ ${#missing[@]} -gt 0 ]; then
    echo "skipping $1: missing Debian package(s): ${missing[*]} (apt-get install ${missing[*]})" >&2
    return 1
  fi
}

# build TARGET CDIR NAME EXE: the harness with the model CDIR/NAME.{h,c}.
build() {
  local target=$1 cdir=$2 name=$3 exe=$4
  local upper defs
  upper=$(echo "$name" | tr '[:lower:]' '[:upper:]')
  defs=(-DMODEL="$name" -DMODEL_UPPER="$upper" "-DMODEL_H=\"$name.h\"" -I"$cdir")
  case $target in
    gcc) gcc $STRICT -O2 -DHARNESS_TIME "${defs[@]}" -o "$exe" "$EMB/harness.c" "$cdir/$name.c" ;;
    clang) clang $STRICT -O2 -DHARNESS_TIME "${defs[@]}" -o "$exe" "$EMB/harness.c" "$cdir/$name.c" ;;
    sanitizers)
      gcc $STRICT -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
        -fno-omit-frame-pointer "${defs[@]}" -o "$exe" "$EMB/harness.c" "$cdir/$name.c" ;;
    a53)
      aarch64-linux-gnu-gcc $STRICT -O2 -mcpu=cortex-a53 -static "${defs[@]}" -o "$exe" \
        "$EMB/harness.c" "$cdir/$name.c" ;;
    m4)
      # The model at the strict flags; the harness and start-up code use GNU extensions
      # (inline assembly) and newlib.
      arm-none-eabi-gcc $STRICT $M4_CFLAGS -c -o "$exe.model.o" "$cdir/$name.c" &&
      arm-none-eabi-gcc -std=gnu99 -Wall -Wextra $M4_CFLAGS -DHARNESS_M4 "${defs[@]}" \
        -nostartfiles -T "$EMB/m4/mps2_an386.ld" -Wl,--gc-sections --specs=rdimon.specs \
        -o "$exe" "$EMB/harness.c" "$EMB/m4/startup.c" "$EMB/m4/counter.c" \
        "$exe.model.o" -lc -lrdimon ;;
  esac
}

# run TARGET EXE INPUTS EXPECTED: prints the harness's output.
run() {
  local target=$1 exe=$2 inputs=$3 expected=$4
  case $target in
    gcc | clang | sanitizers) "$exe" "$inputs" "$expected" 0 ;;
    a53) qemu-aarch64 -cpu cortex-a53 "$exe" "$inputs" "$expected" 0 ;;
    m4)
      # Semihosting reads fixed names from qemu's working directory.
      local dir
      dir=$(mktemp -d)
      ln -s "$(realpath "$inputs")" "$dir/inputs.f32"
      ln -s "$(realpath "$expected")" "$dir/expected.f32"
      (cd "$dir" && timeout 3600 qemu-system-arm -M mps2-an386 -nographic -monitor none \
        -serial none -semihosting-config enable=on,target=native \
        -icount shift="${SHIFT:-3}" -kernel "$(realpath "$exe")")
      local rc=$?
      rm -rf "$dir"
      return $rc ;;
  esac
}
