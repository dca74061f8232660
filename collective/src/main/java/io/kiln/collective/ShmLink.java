package io.kiln.collective;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;

/**
 * One direction of a ring link between two ranks on the same host: a single-producer /
 * single-consumer queue of frame slots in a shared memory file (/dev/shm). The producer
 * (lower ring position) creates the file and offers its path and a random token in the TCP
 * handshake; the consumer maps it if it can open it and the token matches (proof of the same
 * host and namespace), then the producer unlinks it. The TCP connection stays open as a
 * liveness channel: a dead process closes it.
 *
 * <p>Layout: a 4 KiB control block (magic, token, geometry; {@code head} = slots published,
 * {@code tail} = slots consumed, {@code abort} flag, each on its own cache line) followed by
 * {@code slots} slots of a 64-byte frame header (same format as TCP frames) plus payload.
 */
final class ShmLink {
    static final long MAGIC = 0x4B494C4E53484D31L; // "KILNSHM1"
    static final int CTRL = 4096;
    static final int SLOT_HEADER = 64;
    private static final int O_MAGIC = 0;
    private static final int O_TOKEN = 8;
    private static final int O_SLOTS = 16;
    private static final int O_SLOT_BYTES = 20;
    private static final int O_HEAD = 128;
    private static final int O_TAIL = 256;
    private static final int O_ABORT = 384;
    private static final int O_CONSUMER_SLEEPING = 512;
    private static final int O_PRODUCER_SLEEPING = 640;

    /** abort flag values */
    static final int ABORT_NONE = 0;
    static final int ABORT_FAILED = 1;
    static final int ABORT_CLOSED = 2;

    private static final VarHandle LONGS = MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.nativeOrder());
    private static final VarHandle INTS = MethodHandles.byteBufferViewVarHandle(int[].class, ByteOrder.nativeOrder());
    private static final SecureRandom RANDOM = new SecureRandom();

    final Path path;
    final long token;
    final int slots;
    final int slotBytes;
    private final int stride;
    private final MappedByteBuffer map;
    /** big-endian view for frame headers */
    final ByteBuffer headers;
    /** view used for bulk payload copies (one thread at a time) */
    private final ByteBuffer payload;
    private FloatBuffer floatsLE;
    private FloatBuffer floatsBE;
    /** producer: next slot to publish; consumer: next slot to consume */
    private long cursor;
    /** producer's cached view of the consumer's tail */
    private long cachedTail;

    private ShmLink(Path path, long token, int slots, int slotBytes, MappedByteBuffer map) {
        this.path = path;
        this.token = token;
        this.slots = slots;
        this.slotBytes = slotBytes;
        this.stride = SLOT_HEADER + align64(slotBytes);
        this.map = map;
        this.headers = map.duplicate().order(ByteOrder.BIG_ENDIAN);
        this.payload = map.duplicate().order(ByteOrder.nativeOrder());
    }

    private static int align64(int n) {
        return (n + 63) & ~63;
    }

    static long size(int slots, int slotBytes) {
        return CTRL + (long) slots * (SLOT_HEADER + align64(slotBytes));
    }

    /** Directory for link files: /dev/shm when usable, else java.io.tmpdir. */
    static Path directory() {
        Path shm = Paths.get("/dev/shm");
        if (Files.isDirectory(shm) && Files.isWritable(shm)) {
            return shm;
        }
        return Paths.get(System.getProperty("java.io.tmpdir"));
    }

    /** Producer side: creates and maps a fresh link file (owner read/write only). */
    static ShmLink create(int generation, int fromRank, int slots, int slotBytes) throws IOException {
        long token = RANDOM.nextLong();
        Path p = directory().resolve(String.format("kiln-ring-g%d-r%d-%016x", generation, fromRank, token));
        Files.createFile(p, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        try (FileChannel fc = FileChannel.open(p, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            long size = size(slots, slotBytes);
            MappedByteBuffer m = fc.map(FileChannel.MapMode.READ_WRITE, 0, size);
            m.order(ByteOrder.nativeOrder());
            m.putLong(O_TOKEN, token);
            m.putInt(O_SLOTS, slots);
            m.putInt(O_SLOT_BYTES, slotBytes);
            LONGS.setRelease(m, O_MAGIC, MAGIC);
            return new ShmLink(p, token, slots, slotBytes, m);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(p);
            throw e;
        }
    }

    /** Consumer side: maps the producer's file; null when it is not reachable (another host). */
    static ShmLink attach(String path, long token) {
        Path p;
        try {
            p = Paths.get(path);
        } catch (RuntimeException e) {
            return null;
        }
        if (!p.getFileName().toString().startsWith("kiln-ring-") || !Files.isRegularFile(p)) {
            return null;
        }
        try (FileChannel fc = FileChannel.open(p, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            if (fc.size() < CTRL) {
                return null;
            }
            MappedByteBuffer m = fc.map(FileChannel.MapMode.READ_WRITE, 0, fc.size());
            m.order(ByteOrder.nativeOrder());
            if ((long) LONGS.getAcquire(m, O_MAGIC) != MAGIC || m.getLong(O_TOKEN) != token) {
                return null;
            }
            int slots = m.getInt(O_SLOTS);
            int slotBytes = m.getInt(O_SLOT_BYTES);
            if (slots < 1 || slotBytes < 0 || size(slots, slotBytes) != fc.size()) {
                return null;
            }
            return new ShmLink(p, token, slots, slotBytes, m);
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    void unlink() {
        try {
            Files.deleteIfExists(path);
        } catch (IOException ignored) {
            // best effort: the mapping stays valid either way
        }
    }

    int slotBase(long seq) {
        return CTRL + (int) (seq % slots) * stride;
    }

    // ------------------------------------------------------------------ producer

    /** Whether a slot is free for the next frame. */
    boolean canPublish() {
        if (cursor - cachedTail < slots) {
            return true;
        }
        cachedTail = (long) LONGS.getAcquire(map, O_TAIL);
        return cursor - cachedTail < slots;
    }

    /** Header offset of the slot to fill next (call only when {@link #canPublish()}). */
    int nextSlot() {
        return slotBase(cursor);
    }

    /** Copies {@code len} bytes of {@code src} from its position into the next slot's payload. */
    void putPayload(ByteBuffer src, int len) {
        if (len == 0) {
            return;
        }
        int at = slotBase(cursor) + SLOT_HEADER;
        ByteBuffer d = payload;
        d.limit(d.capacity());
        d.position(at);
        d.limit(at + len);
        d.put(src);
    }

    /** Makes the slot visible; full fence, so a consumer that went to sleep is seen by {@link #consumerSleeping()}. */
    void publish() {
        cursor++;
        LONGS.setVolatile(map, O_HEAD, cursor);
    }

    // ------------------------------------------------------------------ consumer

    /** Whether the next frame has arrived. */
    boolean available() {
        return (long) LONGS.getAcquire(map, O_HEAD) > cursor;
    }

    /** Header offset of the next frame to consume (call only when {@link #available()}). */
    int currentSlot() {
        return slotBase(cursor);
    }

    /** Copies the current slot's payload into {@code dst} at its position (len bytes). */
    void getPayload(ByteBuffer dst, int len) {
        if (len == 0) {
            return;
        }
        int at = slotBase(cursor) + SLOT_HEADER;
        ByteBuffer s = payload;
        s.limit(s.capacity());
        s.position(at);
        s.limit(at + len);
        dst.put(s);
    }

    /** Float view of the whole mapping in the given byte order (for reducing straight from a slot). */
    FloatBuffer floats(ByteOrder order) {
        if (order == ByteOrder.LITTLE_ENDIAN) {
            if (floatsLE == null) {
                floatsLE = map.duplicate().clear().order(order).asFloatBuffer();
            }
            return floatsLE;
        }
        if (floatsBE == null) {
            floatsBE = map.duplicate().clear().order(order).asFloatBuffer();
        }
        return floatsBE;
    }

    /** Frees the slot; full fence, so a producer that went to sleep is seen by {@link #producerSleeping()}. */
    void consume() {
        cursor++;
        LONGS.setVolatile(map, O_TAIL, cursor);
    }

    // ------------------------------------------------------------------ both

    /*
     * Sleeping: a side that has spun long enough without progress sets its flag (full fence),
     * re-checks the queue, and blocks on the link's TCP connection; the other side, after
     * publishing or consuming (full fence), sees the flag and writes one doorbell byte.
     */

    void setConsumerSleeping(boolean on) {
        INTS.setVolatile(map, O_CONSUMER_SLEEPING, on ? 1 : 0);
    }

    boolean consumerSleeping() {
        return (int) INTS.getVolatile(map, O_CONSUMER_SLEEPING) != 0;
    }

    void setProducerSleeping(boolean on) {
        INTS.setVolatile(map, O_PRODUCER_SLEEPING, on ? 1 : 0);
    }

    boolean producerSleeping() {
        return (int) INTS.getVolatile(map, O_PRODUCER_SLEEPING) != 0;
    }

    int abortFlag() {
        return (int) INTS.getAcquire(map, O_ABORT);
    }

    void setAbort(int flag) {
        INTS.compareAndSet(map, O_ABORT, ABORT_NONE, flag);
    }
}
