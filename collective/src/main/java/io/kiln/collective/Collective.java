package io.kiln.collective;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;

/**
 * A process group for data-parallel training: in-place collectives over float32 buffers.
 *
 * <p>Buffers: the region is {@code count} float32 elements starting at the buffer's current
 * position; position, limit and mark are left unchanged. Direct buffers are used zero-copy
 * (a {@link ByteBuffer} is read in its own byte order, e.g. the native-order buffer DJL's
 * {@code toByteBuffer(true)} returns); heap buffers work through an internal staging copy.
 *
 * <p>Every rank must call the same collectives in the same order with the same counts (and
 * the same root for broadcast). A mismatch is detected on the wire and raises
 * {@link CollectiveException} on every rank. Every blocking call is bounded by
 * {@link CollectiveOptions#timeout()}. After any failure the instance is unusable: close it
 * and form a new group (for example with a higher generation). After a failure the content
 * of the buffer passed to the failed call is unspecified.
 *
 * <p>An instance is meant to be driven by one thread at a time; calls are serialised.
 */
public interface Collective extends AutoCloseable {

    /** This process's rank, 0 .. worldSize()-1. */
    int rank();

    /** Number of ranks in the group. */
    int worldSize();

    /** Group generation (epoch) this instance was formed with; 0 when unused. */
    int generation();

    /** "ring", "nccl" or another backend name. */
    String backend();

    /** In place: buffer[i] = sum over ranks of buffer[i], for {@code count} float32 elements. */
    void allReduceSum(ByteBuffer buffer, int count);

    /** In place sum, see {@link #allReduceSum(ByteBuffer, int)}. */
    void allReduceSum(FloatBuffer buffer, int count);

    /** In place: buffer[i] = mean over ranks of buffer[i] (sum, then multiplied by 1/worldSize). */
    default void allReduceAverage(ByteBuffer buffer, int count) {
        allReduceSum(buffer, count);
        Reduce.scale(buffer, count, 1.0f / worldSize());
    }

    /** In place mean, see {@link #allReduceAverage(ByteBuffer, int)}. */
    default void allReduceAverage(FloatBuffer buffer, int count) {
        allReduceSum(buffer, count);
        Reduce.scale(buffer, count, 1.0f / worldSize());
    }

    /** Copies {@code count} float32 elements from {@code root}'s buffer into every other rank's buffer. */
    void broadcast(ByteBuffer buffer, int count, int root);

    /** See {@link #broadcast(ByteBuffer, int, int)}. */
    void broadcast(FloatBuffer buffer, int count, int root);

    /** Returns once every rank has entered the barrier (or throws on failure/timeout). */
    void barrier();

    /** Releases sockets, threads and device resources. Idempotent; peers see the group closed. */
    @Override
    void close();
}
