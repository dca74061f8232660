package io.kiln.worker.checkpoint;

import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * A checkpoint read back and verified (size and CRC32): its folder, metadata and the contents of
 * state.bin (float32 little-endian). Made by {@link Checkpoints#load}.
 */
public record Checkpoint(URI uri, CheckpointMetadata metadata, ByteBuffer data) {

  /** The values of tensor {@code i} of {@link CheckpointMetadata#tensors()} (a read-only little-endian view). */
  public FloatBuffer tensor(int i) {
    CheckpointMetadata.TensorInfo t = metadata.tensors().get(i);
    ByteBuffer b = data.duplicate();
    b.limit(Math.toIntExact(t.offset() + t.count() * Float.BYTES)).position(Math.toIntExact(t.offset()));
    // (slice() and asReadOnlyBuffer() reset a ByteBuffer's order to big-endian: set it last)
    return b.slice().asReadOnlyBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
  }

  public CheckpointMetadata.Position position() {
    return metadata.position();
  }
}
