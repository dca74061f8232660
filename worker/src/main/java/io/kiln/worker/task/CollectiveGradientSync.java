package io.kiln.worker.task;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import io.kiln.collective.Collective;
import io.kiln.worker.training.GradientSync;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * Averages gradients across ranks through a {@link Collective}, bucket by bucket: gradients are
 * packed (in parameter order) into one direct buffer allocated once, each bucket of at most
 * {@code bucketBytes} is all-reduced and scaled, and the averages are written back in place
 * through each gradient's own direct buffer (never {@code NDArray.set}, see STACK.md).
 *
 * <p>At the start, rank 0's parameters are broadcast so every rank begins from identical weights
 * whatever their initialisers did.
 */
public final class CollectiveGradientSync implements GradientSync {
  /** Default bucket: 25 MiB, as PyTorch DDP; gradients of Kiln's MLPs fit in one. */
  public static final int DEFAULT_BUCKET_BYTES = 25 << 20;

  private final Collective collective;
  private final int bucketFloats;
  private ByteBuffer flat;

  public CollectiveGradientSync(Collective collective, int bucketBytes) {
    this.collective = collective;
    this.bucketFloats = Math.max(1, bucketBytes / Float.BYTES);
  }

  public Collective collective() {
    return collective;
  }

  @Override
  public void start(NDList parameters) {
    int total = pack(parameters);
    for (int off = 0; off < total; off += bucketFloats) {
      int n = Math.min(bucketFloats, total - off);
      collective.broadcast(slice(off, n), n, 0);
    }
    if (collective.rank() != 0) unpack(parameters);
  }

  @Override
  public void sync(NDList gradients, long step) {
    int total = pack(gradients);
    for (int off = 0; off < total; off += bucketFloats) {
      int n = Math.min(bucketFloats, total - off);
      collective.allReduceSum(slice(off, n), n);
    }
    unpack(gradients);
    // The average, scaled by PyTorch's vectorised kernel rather than a Java loop.
    float scale = 1f / collective.worldSize();
    for (NDArray g : gradients) g.muli(scale);
  }

  @Override
  public void close() {
    collective.close();
  }

  /** Copies the arrays into the flat buffer (growing it once); returns the float count. */
  private int pack(NDList arrays) {
    long total = 0;
    for (NDArray a : arrays) total += a.size();
    if (total > Integer.MAX_VALUE / Float.BYTES) throw new IllegalArgumentException("model too large for one flat buffer");
    if (flat == null || flat.capacity() < total * Float.BYTES) {
      flat = ByteBuffer.allocateDirect((int) total * Float.BYTES).order(ByteOrder.nativeOrder());
    }
    FloatBuffer out = flat.asFloatBuffer();
    for (NDArray a : arrays) out.put(a.toByteBuffer(true).order(ByteOrder.nativeOrder()).asFloatBuffer());
    return (int) total;
  }

  /** Writes the flat buffer back into the arrays' own memory (bulk copies). */
  private void unpack(NDList arrays) {
    FloatBuffer in = flat.asFloatBuffer();
    for (NDArray a : arrays) {
      FloatBuffer dst = a.toByteBuffer(true).order(ByteOrder.nativeOrder()).asFloatBuffer();
      int n = dst.remaining();
      FloatBuffer src = in.slice();
      src.limit(n);
      dst.put(src);
      in.position(in.position() + n);
    }
  }

  private ByteBuffer slice(int offsetFloats, int countFloats) {
    ByteBuffer b = flat.duplicate().order(ByteOrder.nativeOrder());
    b.position(offsetFloats * Float.BYTES).limit((offsetFloats + countFloats) * Float.BYTES);
    return b.slice().order(ByteOrder.nativeOrder());
  }
}
