#!/usr/bin/env bash
# Builds deploy/gpu/target/dist (git-ignored) for a GPU machine that has no Java, Maven or internet:
#   jre/           jlink runtime (~40 MB)
#   lib/common/    kiln-collective jar, slf4j
#   lib/cuda12/    JavaCPP 1.5.12 + cuda 12.9 preset (JNI glue for libcudart.so.12 + libnccl.so.2 only)
#   lib/cuda13/    JavaCPP 1.5.13 + cuda 13.1 preset (JNI glue for libcudart.so.13 + libnccl.so.2 only)
#   bench/         W2 benchmark classes;  peers/  the gloo peer script
# Prerequisite: mvn -q -B -o -pl collective install   (the 1.5.13 jars are fetched with
# `mvn dependency:get` if they are not in ~/.m2 yet; that needs Maven Central once).
# Then on the GPU machine: deploy/gpu/nccl-check.sh   (carry deploy/gpu/target/dist)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
DIST=$ROOT/deploy/gpu/target/dist
M2=${M2_REPO:-$HOME/.m2/repository}
COLLECTIVE_JAR=$(ls collective/target/kiln-collective-*.jar 2>/dev/null | grep -v -e sources -e tests | head -1 || true)
[ -n "$COLLECTIVE_JAR" ] || { echo "build collective first: mvn -q -B -o -pl collective install" >&2; exit 1; }

rm -rf "$DIST"
mkdir -p "$DIST/lib/common" "$DIST/lib/cuda12" "$DIST/lib/cuda13" "$DIST/bench" "$DIST/peers"

jlink --add-modules java.base,java.logging,java.management,jdk.management,jdk.unsupported,java.naming,java.xml \
  --strip-debug --no-header-files --no-man-pages --compress=2 --output "$DIST/jre"

cp "$COLLECTIVE_JAR" "$DIST/lib/common/"
cp "$M2/org/slf4j/slf4j-api/2.0.17/slf4j-api-2.0.17.jar" "$M2/org/slf4j/slf4j-simple/2.0.17/slf4j-simple-2.0.17.jar" \
  "$DIST/lib/common/"

fetch() { # groupId:artifactId:version[:jar:classifier] -> path in ~/.m2
  local g a v c f
  IFS=: read -r g a v _ c <<<"$1"
  f="$M2/${g//.//}/$a/$v/$a-$v${c:+-$c}.jar"
  [ -f "$f" ] || mvn -q -B dependency:get -Dartifact="$1" -Dtransitive=false >&2
  echo "$f"
}
slim() { # native preset jar -> jar with only the CUDA runtime and NCCL JNI libraries
  local tmp; tmp=$(mktemp -d)
  (cd "$tmp" && unzip -q "$1" 'org/bytedeco/cuda/linux-x86_64/libjnicudart.so' 'org/bytedeco/cuda/linux-x86_64/libjninccl.so' \
    && jar cf "$2" org)
  rm -rf "$tmp"
}
for spec in "cuda12 1.5.12 12.9-9.10-1.5.12" "cuda13 1.5.13 13.1-9.19-1.5.13"; do
  read -r dir jcpp cuda <<<"$spec"
  cp "$(fetch org.bytedeco:javacpp:$jcpp)" "$(fetch org.bytedeco:javacpp:$jcpp:jar:linux-x86_64)" "$DIST/lib/$dir/"
  cp "$(fetch org.bytedeco:cuda:$cuda)" "$DIST/lib/$dir/"
  slim "$(fetch org.bytedeco:cuda:$cuda:jar:linux-x86_64)" "$DIST/lib/$dir/cuda-$cuda-linux-x86_64-nccl-only.jar"
done

if [ -f benchmarks/target/classes/io/kiln/benchmarks/collective/AllReduceBenchmark.class ]; then
  mkdir -p "$DIST/bench/io/kiln/benchmarks"
  cp -r benchmarks/target/classes/io/kiln/benchmarks/collective "$DIST/bench/io/kiln/benchmarks/"
else
  javac -q -d "$DIST/bench" -cp "$COLLECTIVE_JAR" benchmarks/src/main/java/io/kiln/benchmarks/collective/*.java 2>/dev/null \
    || javac -d "$DIST/bench" -cp "$COLLECTIVE_JAR" benchmarks/src/main/java/io/kiln/benchmarks/collective/*.java
fi
PEER=${PEER:-$ROOT/../shared/benchmarks/peers/allreduce_gloo.py}
[ -f "$PEER" ] && cp "$PEER" "$DIST/peers/"
du -sh "$DIST" "$DIST"/* "$DIST"/lib/*
