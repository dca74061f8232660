package io.kiln.collective;

import java.time.Duration;
import java.util.Objects;

/**
 * Immutable settings of a collective group. Every rank of a group must use the same
 * {@code generation}, {@code chunkBytes} and {@code smallMessageBytes}: the ring checks them
 * in its handshake and refuses a peer that differs.
 */
public final class CollectiveOptions {

    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(30);

    private final Duration timeout;
    private final Duration connectTimeout;
    private final int generation;
    private final int chunkBytes;
    private final int smallMessageBytes;
    private final int socketBufferBytes;
    private final boolean sharedMemory;

    private CollectiveOptions(Duration timeout, Duration connectTimeout, int generation, int chunkBytes,
                              int smallMessageBytes, int socketBufferBytes, boolean sharedMemory) {
        this.timeout = positive(timeout, "timeout");
        this.connectTimeout = positive(connectTimeout, "connectTimeout");
        if (chunkBytes < 4096 || chunkBytes % 4 != 0) {
            throw new IllegalArgumentException("chunkBytes must be a multiple of 4 and >= 4096: " + chunkBytes);
        }
        if (smallMessageBytes < 0) {
            throw new IllegalArgumentException("smallMessageBytes must be >= 0: " + smallMessageBytes);
        }
        if (socketBufferBytes < 0) {
            throw new IllegalArgumentException("socketBufferBytes must be >= 0 (0 = OS default): " + socketBufferBytes);
        }
        this.generation = generation;
        this.chunkBytes = chunkBytes;
        this.smallMessageBytes = smallMessageBytes;
        this.socketBufferBytes = socketBufferBytes;
        this.sharedMemory = sharedMemory;
    }

    private static Duration positive(Duration d, String name) {
        Objects.requireNonNull(d, name);
        if (d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException(name + " must be positive: " + d);
        }
        return d;
    }

    /**
     * Defaults: 30 s timeouts, generation 0, 256 KiB chunks, 64 KiB small-message path, 4 MiB
     * socket buffers, shared memory between ranks on the same host.
     */
    public static CollectiveOptions defaults() {
        return new CollectiveOptions(DEFAULT_TIMEOUT, DEFAULT_TIMEOUT, 0, 256 << 10, 64 << 10, 4 << 20, true);
    }

    /** Upper bound of every blocking collective call (all-reduce, broadcast, barrier). */
    public Duration timeout() { return timeout; }

    /** Upper bound of forming the group (bind, connect with retries, handshake). */
    public Duration connectTimeout() { return connectTimeout; }

    /** Group generation / epoch: frames and handshakes of another generation are refused. */
    public int generation() { return generation; }

    /** Pipelining unit of large messages, bytes. */
    public int chunkBytes() { return chunkBytes; }

    /** Messages of at most this many bytes take the latency path (caller thread only, no chunking). */
    public int smallMessageBytes() { return smallMessageBytes; }

    /** SO_SNDBUF / SO_RCVBUF requested for ring sockets; 0 keeps the OS default. */
    public int socketBufferBytes() { return socketBufferBytes; }

    /**
     * Whether a ring link between two ranks on the same host may use shared memory (/dev/shm)
     * instead of TCP for data; negotiated per link, TCP stays open for liveness. Default true.
     */
    public boolean sharedMemory() { return sharedMemory; }

    /** {@code false} forces TCP for every link. */
    public CollectiveOptions withSharedMemory(boolean on) {
        return new CollectiveOptions(timeout, connectTimeout, generation, chunkBytes, smallMessageBytes,
                socketBufferBytes, on);
    }

    public CollectiveOptions withTimeout(Duration t) {
        return new CollectiveOptions(t, connectTimeout, generation, chunkBytes, smallMessageBytes, socketBufferBytes, sharedMemory);
    }

    public CollectiveOptions withConnectTimeout(Duration t) {
        return new CollectiveOptions(timeout, t, generation, chunkBytes, smallMessageBytes, socketBufferBytes, sharedMemory);
    }

    public CollectiveOptions withGeneration(int g) {
        return new CollectiveOptions(timeout, connectTimeout, g, chunkBytes, smallMessageBytes, socketBufferBytes, sharedMemory);
    }

    public CollectiveOptions withChunkBytes(int b) {
        return new CollectiveOptions(timeout, connectTimeout, generation, b, smallMessageBytes, socketBufferBytes, sharedMemory);
    }

    public CollectiveOptions withSmallMessageBytes(int b) {
        return new CollectiveOptions(timeout, connectTimeout, generation, chunkBytes, b, socketBufferBytes, sharedMemory);
    }

    public CollectiveOptions withSocketBufferBytes(int b) {
        return new CollectiveOptions(timeout, connectTimeout, generation, chunkBytes, smallMessageBytes, b, sharedMemory);
    }

    @Override
    public String toString() {
        return "CollectiveOptions{timeout=" + timeout + ", connectTimeout=" + connectTimeout + ", generation=" + generation
                + ", chunkBytes=" + chunkBytes + ", smallMessageBytes=" + smallMessageBytes
                + ", socketBufferBytes=" + socketBufferBytes + ", sharedMemory=" + sharedMemory + '}';
    }
}
