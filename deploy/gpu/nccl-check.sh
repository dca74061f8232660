#!/usr/bin/env bash
# GPU check of Kiln's NCCL backend. Run from anywhere on the GPU machine after carrying
# deploy/gpu/target/dist (made by deploy/gpu/build-dist.sh). It
#   1. prints the host, nvidia-smi and the Java runtime it will use,
#   2. finds libnccl.so.2 and libcudart (PyTorch's pip wheels: site-packages/nvidia/..., or a CUDA
#      toolkit), puts them on LD_LIBRARY_PATH and picks the JavaCPP CUDA preset (12 or 13) that
#      matches the runtime found,
#   3. runs io.kiln.collective.nccl.NcclCheck (load, unique id, ncclCommInitRank, all-reduce /
#      broadcast / barrier on cudaMalloc'd memory with result checks, timings, two ranks on one GPU),
#   4. unless RUN_W2=0, runs benchmark W2 (ring all-reduce vs gloo) on this host's CPUs, W2_RUNS times (median).
# Exit status: 0 all checks passed; 2 NCCL is not usable here (no GPU, driver or libraries:
# reported, not a crash); 1 a check failed. When $OUT is set, the log is also written there.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIST=${DIST:-$ROOT/deploy/gpu/target/dist}
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  exec > >(tee "$OUT/nccl-check.log") 2>&1
fi
say() { echo "== $*"; }

say "host $(hostname), kernel $(uname -r), $(nproc) CPUs,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
say "nvidia-smi"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi 2>&1 | head -25
else
  echo "nvidia-smi: not found"
fi

say "java (system: $(command -v java || echo none))"
if [ -x "$DIST/jre/bin/java" ]; then
  JAVA=$DIST/jre/bin/java
elif command -v java >/dev/null 2>&1; then
  JAVA=java
else
  echo "no Java runtime: run deploy/gpu/build-dist.sh on the build machine and carry deploy/gpu/target/dist"
  exit 2
fi
"$JAVA" -version 2>&1 | head -1

say "libraries"
PY=$(command -v python3 || true)
SITES=""
TORCH_CUDA=""
NCCL_DIR=""
if [ -n "$PY" ]; then
  NCCL_DIR=$("$PY" -c 'import nvidia.nccl, os; print(os.path.join(list(nvidia.nccl.__path__)[0], "lib"))' 2>/dev/null || true)
  SITES=$("$PY" -c 'import site, sys; print(" ".join(sorted(set(site.getsitepackages() + [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]))))' 2>/dev/null || true)
  TORCH_CUDA=$("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda or "cpu")' 2>/dev/null || true)
  echo "python3 $PY; torch: ${TORCH_CUDA:-not importable}"
fi
find_lib() { # first directory holding a file named $1
  local d f
  for d in $SITES; do
    for sub in nvidia torch/lib; do
      [ -d "$d/$sub" ] || continue
      f=$(find "$d/$sub" -maxdepth 3 -name "$1" 2>/dev/null | head -1)
      if [ -n "$f" ]; then dirname "$f"; return 0; fi
    done
  done
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
    if [ -e "$d/$1" ]; then echo "$d"; return 0; fi
  done
  return 1
}
[ -n "$NCCL_DIR" ] && [ -e "$NCCL_DIR/libnccl.so.2" ] || NCCL_DIR=$(find_lib libnccl.so.2 || true)
CUDART12=$(find_lib libcudart.so.12 || true)
CUDART13=$(find_lib libcudart.so.13 || true)
echo "libnccl.so.2:    ${NCCL_DIR:-not found}"
echo "libcudart.so.12: ${CUDART12:-not found}"
echo "libcudart.so.13: ${CUDART13:-not found}"

# preset order: the CUDA major PyTorch was built with first
ORDER="cuda12 cuda13"
case "$TORCH_CUDA" in *" 13."*) ORDER="cuda13 cuda12" ;; esac
[ -z "$CUDART12" ] && [ -n "$CUDART13" ] && ORDER="cuda13 cuda12"

RC=2
for V in $ORDER; do
  case $V in cuda12) RT=$CUDART12 ;; *) RT=$CUDART13 ;; esac
  if [ -z "$RT" ] && [ "$V" != "${ORDER%% *}" ]; then continue; fi
  say "NcclCheck with the $V preset"
  export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
  export LD_LIBRARY_PATH="${NCCL_DIR:+$NCCL_DIR:}${RT:+$RT:}${LD_LIBRARY_PATH:-}"
  timeout 240 "$JAVA" -Xmx2g -Dorg.bytedeco.javacpp.cachedir="${TMPDIR:-/tmp}/kiln-javacpp" \
    -cp "$DIST/lib/common/*:$DIST/lib/$V/*" io.kiln.collective.nccl.NcclCheck 0
  RC=$?
  echo "NcclCheck exit status $RC"
  [ $RC -ne 2 ] && break
done

if [ "${RUN_W2:-1}" != 0 ] && [ -n "$PY" ] && [ -f "$DIST/peers/allreduce_gloo.py" ]; then
  say "W2 on this host's CPUs (ring vs gloo, 2 ranks on loopback)"
  timeout 240 "$JAVA" -cp "$DIST/lib/common/*:$DIST/bench" io.kiln.benchmarks.collective.AllReduceBenchmark \
    --python "$PY" --peer "$DIST/peers/allreduce_gloo.py" --runs "${W2_RUNS:-1}" || echo "W2 exit status $?"
fi
exit $RC
