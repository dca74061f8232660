package io.kiln.collective;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.net.UnknownHostException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * CPU collectives over a TCP ring: rank r sends to rank (r+1)%n and receives from rank
 * (r-1+n)%n. All-reduce is a reduce-scatter followed by an all-gather (each rank sends
 * 2(n-1)/n of the buffer), chunked and pipelined: a sender thread streams chunk k+1 to the next
 * rank while the calling thread receives and reduces chunk k. Messages of at most
 * {@link CollectiveOptions#smallMessageBytes()} bytes take a latency path that runs entirely on
 * the calling thread (one frame per step, no thread hand-off).
 *
 * <p>Every frame carries a header (see {@link Frames}) that the receiver checks against what it
 * expects; any mismatch, a short read, a closed peer or a timeout fails the group: this rank
 * closes both of its connections, so its neighbours fail at once too, and so on around the ring.
 *
 * <pre>{@code
 * List<String> addrs = List.of("10.0.0.1:7700", "10.0.0.2:7700");
 * try (RingCollective ring = RingCollective.open(rank, addrs, CollectiveOptions.defaults().withGeneration(gen))) {
 *     ring.allReduceSum(gradients, gradients.remaining());   // direct FloatBuffer, in place
 * }
 * }</pre>
 */
public final class RingCollective implements Collective {

    private static final Logger log = LoggerFactory.getLogger(RingCollective.class);

    private static final ScheduledExecutorService WATCHDOG = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "kiln-collective-watchdog");
        t.setDaemon(true);
        return t;
    });

    private static final int SPINS = 200;

    /**
     * Large messages over shared memory on both links: with at least 4 CPUs a sender thread fills
     * outgoing slots while the caller reduces (more memory bandwidth in flight); with fewer CPUs
     * one thread does both (no hand-offs, no competing spinners). Override with the system
     * property kiln.collective.shm.senderThread=true|false.
     */
    private static final boolean SHM_SENDER_THREAD = Boolean.parseBoolean(System.getProperty(
            "kiln.collective.shm.senderThread", String.valueOf(Runtime.getRuntime().availableProcessors() >= 4)));
    private static final ByteBuffer EMPTY = ByteBuffer.allocateDirect(0);

    private final int rank;
    private final int world;
    private final int gen;
    private final CollectiveOptions options;
    private final long timeoutNanos;
    private final int nextRank;
    private final int prevRank;
    private final SocketChannel next;
    private final SocketChannel prev;
    /** Shared-memory data links (null: the link uses its TCP connection for data). */
    private final ShmLink shmOut;
    private final ShmLink shmIn;
    private final ByteBuffer doorbellOutNext = ByteBuffer.allocateDirect(1);
    private final ByteBuffer doorbellOutPrev = ByteBuffer.allocateDirect(1);
    private final ByteBuffer doorbellInNext = ByteBuffer.allocateDirect(64);
    private final ByteBuffer doorbellInPrev = ByteBuffer.allocateDirect(64);
    /** Selectors over the liveness/doorbell connections of shared-memory links (null when unused). */
    private final Selector selPrev;
    private final Selector selNext;
    private final Selector selBoth;

    // Caller-thread I/O state (latency path sends, all receives).
    private final ByteBuffer callerHdr = Frames.newHeader();
    private final ByteBuffer recvHdr = Frames.newHeader();
    private final ByteBuffer[] callerVec = new ByteBuffer[2];
    private final ByteBuffer[] recvVec = new ByteBuffer[2];
    private final ByteBuffer scratch;
    private FloatBuffer scratchFloatsLE;
    private FloatBuffer scratchFloatsBE;
    private ByteBuffer staging;

    // Current operation (written by the caller before it is published to the sender).
    private short opCode;
    private int opSeq;
    private int opCount;
    private int opAux;
    private int opK;
    private int opSendItems;
    private int opRecvItems;
    private int opDepLag;
    /** Two ranks, small message: one exchange of the whole buffer, each side adds (latency path). */
    private boolean opDirect;
    private ByteBuffer opCallerView;
    private ByteBuffer opSenderView;
    private FloatBuffer opFloats;
    private FloatBuffer opScratchFloats;

    // View caches (the same gradient buffer is usually passed again and again).
    private FloatBuffer aliasKey;
    private int aliasPos;
    private int aliasCount;
    private ByteBuffer aliasValue;
    private ByteBuffer viewKey;
    private int viewKeyPos;
    private int viewKeyCount;
    private ByteOrder viewKeyOrder;
    private ByteBuffer viewCaller;
    private ByteBuffer viewSender;
    private FloatBuffer viewFloats;

    private int seq;

    // Cross-thread state.
    private final Sender sender;
    private volatile int jobSeq;
    private volatile int senderDoneSeq;
    private volatile int recvDone;
    private volatile int sentDone;
    private volatile boolean callerWaiting;
    private volatile Thread callerThread;
    private volatile long opDeadline;
    private volatile boolean opActive;
    private final AtomicReference<CollectiveException> failure = new AtomicReference<>();
    private volatile boolean closed;
    private final ScheduledFuture<?> watchdogTask;

    private RingCollective(int rank, int world, CollectiveOptions options, SocketChannel next, SocketChannel prev) {
        this(rank, world, options, next, prev, null, null);
    }

    private RingCollective(int rank, int world, CollectiveOptions options, SocketChannel next, SocketChannel prev,
                           ShmLink shmOut, ShmLink shmIn) {
        this.rank = rank;
        this.world = world;
        this.options = options;
        this.gen = options.generation();
        this.timeoutNanos = options.timeout().toNanos();
        this.nextRank = (rank + 1) % world;
        this.prevRank = (rank - 1 + world) % world;
        this.next = next;
        this.prev = prev;
        this.shmOut = shmOut;
        this.shmIn = shmIn;
        try {
            this.selPrev = shmIn != null ? selector(prev) : null;
            this.selNext = shmOut != null ? selector(next) : null;
            this.selBoth = shmIn != null && shmOut != null ? selector(prev, next) : null;
        } catch (IOException e) {
            throw new CollectiveException("rank " + rank + ": cannot create selectors: " + e, e);
        }
        if (world > 1) {
            this.scratch = ByteBuffer.allocateDirect(Math.max(options.chunkBytes(), options.smallMessageBytes()) + 64);
            this.sender = new Sender();
            this.sender.start();
            long period = Math.max(10, Math.min(1000, options.timeout().toMillis() / 20));
            this.watchdogTask = WATCHDOG.scheduleWithFixedDelay(this::checkDeadline, period, period, TimeUnit.MILLISECONDS);
        } else {
            this.scratch = null;
            this.sender = null;
            this.watchdogTask = null;
        }
    }

    private static Selector selector(SocketChannel... chs) throws IOException {
        Selector sel = Selector.open();
        for (SocketChannel ch : chs) {
            ch.register(sel, SelectionKey.OP_READ);
        }
        return sel;
    }

    // ------------------------------------------------------------------ forming the group

    /**
     * Forms the ring: binds {@code addresses.get(rank)}, connects to the next rank and accepts
     * the previous one, retrying until {@link CollectiveOptions#connectTimeout()}. Every rank
     * passes the same address list (host:port, one per rank) and the same options.
     */
    public static RingCollective open(int rank, List<String> addresses, CollectiveOptions options) {
        Objects.requireNonNull(addresses, "addresses");
        checkRank(rank, addresses.size());
        if (addresses.size() == 1) {
            return new RingCollective(0, 1, options, null, null);
        }
        long deadline = System.nanoTime() + options.connectTimeout().toNanos();
        ServerSocketChannel listener = bind(addresses.get(rank), options, deadline);
        return open(rank, addresses, options, listener);
    }

    /** Convenience: {@code open(rank, addresses, CollectiveOptions.defaults().withGeneration(generation))}. */
    public static RingCollective open(int rank, List<String> addresses, int generation) {
        return open(rank, addresses, CollectiveOptions.defaults().withGeneration(generation));
    }

    /**
     * Forms the ring on a listener the caller bound already (e.g. on port 0, to publish the
     * actual port before the address list is known). The listener is closed once the ring is
     * formed or has failed. {@code addresses.get(rank)} is not used.
     */
    public static RingCollective open(int rank, List<String> addresses, CollectiveOptions options,
                                      ServerSocketChannel listener) {
        Objects.requireNonNull(addresses, "addresses");
        Objects.requireNonNull(options, "options");
        int n = addresses.size();
        checkRank(rank, n);
        if (n == 1) {
            closeQuietly(listener);
            return new RingCollective(0, 1, options, null, null);
        }
        long deadline = System.nanoTime() + options.connectTimeout().toNanos();
        int nextRank = (rank + 1) % n;
        int prevRank = (rank - 1 + n) % n;
        SocketChannel next = null;
        Accepted accepted = null;
        ShmLink offered = null;
        try {
            InetSocketAddress nextAddr = parse(addresses.get(nextRank));
            next = connect(rank, nextRank, nextAddr, options, deadline);
            if (options.sharedMemory()) {
                try {
                    int slotBytes = Math.max(options.chunkBytes(), options.smallMessageBytes());
                    int slots = Math.max(4, Math.min(64, (2 << 20) / Math.max(1, slotBytes)));
                    offered = ShmLink.create(options.generation(), rank, slots, slotBytes);
                } catch (IOException | RuntimeException e) {
                    log.debug("rank {}: no shared-memory link offered: {}", rank, e.toString());
                }
            }
            byte[] path = offered == null ? new byte[0] : offered.path.toString().getBytes(StandardCharsets.UTF_8);
            if (path.length > Frames.MAX_SHM_PATH) {
                offered.unlink();
                offered = null;
                path = new byte[0];
            }
            int payload = Frames.HELLO_PAYLOAD_BYTES + (offered == null ? 0 : 8 + path.length);
            ByteBuffer hello = ByteBuffer.allocate(Frames.HEADER_BYTES + payload);
            hello.putInt(Frames.MAGIC).putInt(options.generation()).putInt(0).putInt(0)
                    .putShort(Frames.OP_HELLO).putShort((short) rank).putInt(payload)
                    .putInt(n).putInt(Frames.PROTOCOL_VERSION)
                    .putInt(n).putInt(options.chunkBytes()).putInt(options.smallMessageBytes()).putInt(path.length);
            if (offered != null) {
                hello.putLong(offered.token).put(path);
            }
            hello.flip();
            writeWithDeadline(next, hello, deadline);
            ByteBuffer answer = ByteBuffer.allocate(Frames.HEADER_BYTES);
            accepted = acceptPrev(rank, n, prevRank, listener, options, deadline, next, nextRank, answer);
            awaitAck(rank, nextRank, next, deadline, answer);
            ShmLink out = offered != null && answer.getInt(Frames.O_ITEM) == 1 ? offered : null;
            configureData(next, options, out != null);
            configureData(accepted.channel, options, accepted.shm != null);
            log.debug("rank {}/{} generation {}: ring formed (next {} at {} over {}, prev {} over {})", rank, n,
                    options.generation(), nextRank, nextAddr, out != null ? "shm" : "tcp", prevRank,
                    accepted.shm != null ? "shm" : "tcp");
            return new RingCollective(rank, n, options, next, accepted.channel, out, accepted.shm);
        } catch (CollectiveException e) {
            closeQuietly(next);
            closeQuietly(accepted == null ? null : accepted.channel);
            throw e;
        } catch (IOException | RuntimeException e) {
            closeQuietly(next);
            closeQuietly(accepted == null ? null : accepted.channel);
            throw new CollectiveException("rank " + rank + ": forming the ring of " + n + " (generation "
                    + options.generation() + ") failed: " + e, e);
        } finally {
            closeQuietly(listener);
            if (offered != null) {
                offered.unlink(); // both sides have it mapped (or it was refused): no file is left behind
            }
        }
    }

    /**
     * Binds a listener for {@code hostPort} (port 0 picks a free port), retrying while the port
     * is still in use until the deadline. Binds the wildcard address when the host is not local.
     */
    public static ServerSocketChannel listen(String hostPort, CollectiveOptions options) {
        return bind(hostPort, options, System.nanoTime() + options.connectTimeout().toNanos());
    }

    private static ServerSocketChannel bind(String hostPort, CollectiveOptions options, long deadline) {
        InetSocketAddress addr = parse(hostPort);
        IOException last = null;
        boolean wildcard = false;
        while (true) {
            ServerSocketChannel ss = null;
            try {
                ss = ServerSocketChannel.open();
                ss.setOption(StandardSocketOptions.SO_REUSEADDR, true);
                if (options.socketBufferBytes() > 0) {
                    ss.setOption(StandardSocketOptions.SO_RCVBUF, options.socketBufferBytes());
                }
                ss.bind(wildcard ? new InetSocketAddress(addr.getPort()) : addr, 64);
                return ss;
            } catch (IOException e) {
                closeQuietly(ss);
                last = e;
                if (!wildcard && e.getMessage() != null && e.getMessage().contains("assign requested address")) {
                    wildcard = true; // advertised address is not local (NAT, container): listen on all interfaces
                    continue;
                }
            }
            if (System.nanoTime() - deadline > 0) {
                throw new CollectiveException("cannot listen on " + hostPort + ": " + last, last);
            }
            sleepMillis(50);
        }
    }

    private static SocketChannel connect(int rank, int nextRank, InetSocketAddress addr, CollectiveOptions options,
                                         long deadline) throws IOException {
        IOException last = null;
        int backoff = 10;
        while (true) {
            long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
            if (left <= 0) {
                throw new CollectiveException("rank " + rank + ": cannot connect to rank " + nextRank + " at " + addr
                        + " within " + options.connectTimeout().toMillis() + " ms: " + last, nextRank, last);
            }
            SocketChannel ch = SocketChannel.open();
            try {
                if (options.socketBufferBytes() > 0) {
                    ch.setOption(StandardSocketOptions.SO_RCVBUF, options.socketBufferBytes());
                    ch.setOption(StandardSocketOptions.SO_SNDBUF, options.socketBufferBytes());
                }
                ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
                InetSocketAddress resolved = addr.isUnresolved()
                        ? new InetSocketAddress(InetAddress.getByName(addr.getHostString()), addr.getPort()) : addr;
                ch.socket().connect(resolved, (int) Math.max(1, Math.min(left, Integer.MAX_VALUE)));
                return ch;
            } catch (IOException e) {
                closeQuietly(ch);
                last = e;
            }
            sleepMillis(Math.min(backoff, Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime()))));
            backoff = Math.min(200, backoff * 2);
        }
    }

    /**
     * Accepts connections until the previous rank's valid HELLO arrives. Meanwhile watches the
     * connection to the next rank, whose answer (ACK, or REJECT: fail at once) may come first.
     */
    /** The accepted connection from the previous rank and, when agreed, its shared-memory link. */
    private record Accepted(SocketChannel channel, ShmLink shm) {
    }

    private static Accepted acceptPrev(int rank, int n, int prevRank, ServerSocketChannel listener,
                                       CollectiveOptions options, long deadline, SocketChannel next,
                                       int nextRank, ByteBuffer answer) throws IOException {
        List<String> rejected = new ArrayList<>();
        listener.configureBlocking(false);
        next.configureBlocking(false);
        try (Selector sel = Selector.open()) {
            listener.register(sel, SelectionKey.OP_ACCEPT);
            SelectionKey nextKey = next.register(sel, SelectionKey.OP_READ);
            while (true) {
                long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                if (left <= 0) {
                    throw new CollectiveException("rank " + rank + " (generation " + options.generation()
                            + "): no connection from rank " + prevRank + " within " + options.connectTimeout().toMillis()
                            + " ms" + (rejected.isEmpty() ? "" : "; rejected: " + rejected), prevRank, null);
                }
                sel.select(left);
                sel.selectedKeys().clear();
                if (nextKey.isValid() && answer.hasRemaining()) {
                    int got;
                    try {
                        got = next.read(answer);
                    } catch (IOException e) {
                        got = -1;
                    }
                    if (got < 0) {
                        throw new CollectiveException("rank " + rank + ": rank " + nextRank + " closed the connection"
                                + " during the handshake (peer rank " + nextRank + " failed or refused)", nextRank, null);
                    }
                    if (!answer.hasRemaining()) {
                        nextKey.cancel();
                        if (answer.getShort(Frames.O_OP) == Frames.OP_REJECT) {
                            awaitAck(rank, nextRank, next, deadline, answer); // throws with the reason
                        }
                    }
                }
                SocketChannel ch = listener.accept();
                if (ch == null) {
                    continue;
                }
                String problem;
                ByteBuffer hello = ByteBuffer.allocate(Frames.HEADER_BYTES + Frames.HELLO_PAYLOAD_BYTES);
                ShmLink shm = null;
                try {
                    ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
                    long helloDeadline = Math.min(deadline, System.nanoTime() + TimeUnit.SECONDS.toNanos(5));
                    readWithDeadline(ch, hello, helloDeadline);
                    problem = checkHello(hello, rank, n, prevRank, options);
                    int pathLen = hello.getInt(Frames.HEADER_BYTES + 12);
                    if (problem == null && pathLen > 0) {
                        if (pathLen > Frames.MAX_SHM_PATH
                                || hello.getInt(Frames.O_LENGTH) != Frames.HELLO_PAYLOAD_BYTES + 8 + pathLen) {
                            problem = "malformed shared-memory offer";
                        } else {
                            ByteBuffer offer = ByteBuffer.allocate(8 + pathLen);
                            readWithDeadline(ch, offer, helloDeadline);
                            if (options.sharedMemory()) {
                                shm = ShmLink.attach(new String(offer.array(), 8, pathLen, StandardCharsets.UTF_8),
                                        offer.getLong(0));
                            }
                        }
                    } else if (problem == null && hello.getInt(Frames.O_LENGTH) != Frames.HELLO_PAYLOAD_BYTES) {
                        problem = "malformed HELLO length " + hello.getInt(Frames.O_LENGTH);
                    }
                } catch (IOException | CollectiveException e) {
                    problem = "bad handshake from " + remote(ch) + ": " + e.getMessage();
                }
                if (problem == null) {
                    ByteBuffer ack = ByteBuffer.allocate(Frames.HEADER_BYTES);
                    Frames.put(ack, options.generation(), 0, shm != null ? 1 : 0, Frames.OP_ACK, rank, 0, n,
                            Frames.PROTOCOL_VERSION);
                    writeWithDeadline(ch, ack, deadline);
                    return new Accepted(ch, shm);
                }
                rejected.add(problem);
                log.warn("rank {} (generation {}): refused a connection: {}", rank, options.generation(), problem);
                reject(ch, problem, rank, options);
                int fatalSrc = hello.position() >= Frames.HEADER_BYTES ? hello.getShort(Frames.O_SRC) : -1;
                if (fatalSrc == prevRank && hello.getInt(Frames.O_GEN) == options.generation()
                        && hello.getInt(Frames.O_MAGIC) == Frames.MAGIC) {
                    // The right peer of the right generation disagrees on the group's shape: fail fast.
                    throw new CollectiveException("rank " + rank + ": rank " + prevRank
                            + " is configured differently: " + problem, prevRank, null);
                }
            }
        }
    }

    private static String checkHello(ByteBuffer h, int rank, int n, int prevRank, CollectiveOptions options) {
        int magic = h.getInt(Frames.O_MAGIC);
        if (magic != Frames.MAGIC) {
            return String.format("not a Kiln ring peer (magic 0x%08X)", magic);
        }
        if (h.getShort(Frames.O_OP) != Frames.OP_HELLO) {
            return "expected HELLO, got " + Frames.opName(h.getShort(Frames.O_OP));
        }
        int g = h.getInt(Frames.O_GEN);
        int src = h.getShort(Frames.O_SRC);
        if (g != options.generation()) {
            return "generation mismatch: rank " + src + " is in generation " + g + ", this group is generation "
                    + options.generation();
        }
        if (src != prevRank) {
            return "expected rank " + prevRank + ", rank " + src + " connected (address lists differ?)";
        }
        int version = h.getInt(Frames.O_AUX);
        if (version != Frames.PROTOCOL_VERSION) {
            return "protocol version " + version + ", expected " + Frames.PROTOCOL_VERSION;
        }
        int base = Frames.HEADER_BYTES;
        int peerWorld = h.getInt(base);
        int peerChunk = h.getInt(base + 4);
        int peerSmall = h.getInt(base + 8);
        if (peerWorld != n) {
            return "world size mismatch: rank " + src + " has " + peerWorld + ", this rank has " + n;
        }
        if (peerChunk != options.chunkBytes() || peerSmall != options.smallMessageBytes()) {
            return "options mismatch: rank " + src + " has chunkBytes=" + peerChunk + " smallMessageBytes=" + peerSmall
                    + ", this rank has chunkBytes=" + options.chunkBytes() + " smallMessageBytes="
                    + options.smallMessageBytes();
        }
        return null;
    }

    private static void reject(SocketChannel ch, String problem, int rank, CollectiveOptions options) {
        try {
            byte[] msg = problem.getBytes(StandardCharsets.UTF_8);
            int len = Math.min(msg.length, 1024);
            ByteBuffer b = ByteBuffer.allocate(Frames.HEADER_BYTES + len);
            Frames.put(b, options.generation(), 0, 0, Frames.OP_REJECT, rank, len, 0, Frames.PROTOCOL_VERSION);
            b.position(Frames.HEADER_BYTES);
            b.put(msg, 0, len);
            b.flip();
            writeWithDeadline(ch, b, System.nanoTime() + TimeUnit.SECONDS.toNanos(1));
        } catch (IOException | RuntimeException ignored) {
            // best effort
        } finally {
            closeQuietly(ch);
        }
    }

    private static void awaitAck(int rank, int nextRank, SocketChannel next, long deadline, ByteBuffer h)
            throws IOException {
        try {
            readWithDeadline(next, h, deadline);
        } catch (IOException e) {
            throw new CollectiveException("rank " + rank + ": rank " + nextRank + " closed the connection during the"
                    + " handshake (peer rank " + nextRank + " failed or refused): " + e.getMessage(), nextRank, e);
        }
        if (h.getInt(Frames.O_MAGIC) != Frames.MAGIC) {
            throw new CollectiveException("rank " + rank + ": rank " + nextRank + " answered the handshake with a"
                    + " malformed frame", nextRank, null);
        }
        short op = h.getShort(Frames.O_OP);
        if (op == Frames.OP_REJECT) {
            int len = Math.max(0, Math.min(h.getInt(Frames.O_LENGTH), 1024));
            ByteBuffer msg = ByteBuffer.allocate(len);
            String reason;
            try {
                readWithDeadline(next, msg, deadline);
                reason = new String(msg.array(), 0, len, StandardCharsets.UTF_8);
            } catch (IOException e) {
                reason = "(no reason)";
            }
            throw new CollectiveException("rank " + rank + ": rank " + nextRank + " refused the connection: " + reason,
                    nextRank, null);
        }
        if (op != Frames.OP_ACK) {
            throw new CollectiveException("rank " + rank + ": rank " + nextRank + " answered the handshake with "
                    + Frames.opName(op), nextRank, null);
        }
    }

    /** Data connections block; a connection whose data goes through shared memory only watches liveness. */
    private static void configureData(SocketChannel ch, CollectiveOptions options, boolean livenessOnly)
            throws IOException {
        ch.configureBlocking(!livenessOnly);
        ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
        ch.setOption(StandardSocketOptions.SO_KEEPALIVE, true);
        if (options.socketBufferBytes() > 0) {
            ch.setOption(StandardSocketOptions.SO_SNDBUF, options.socketBufferBytes());
            ch.setOption(StandardSocketOptions.SO_RCVBUF, options.socketBufferBytes());
        }
    }

    private static void readWithDeadline(SocketChannel ch, ByteBuffer b, long deadline) throws IOException {
        ch.configureBlocking(false);
        try (Selector sel = Selector.open()) {
            ch.register(sel, SelectionKey.OP_READ);
            while (b.hasRemaining()) {
                int n = ch.read(b);
                if (n < 0) {
                    throw new IOException("connection closed by " + remote(ch));
                }
                if (n == 0) {
                    long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                    if (left <= 0) {
                        throw new IOException("timed out reading from " + remote(ch));
                    }
                    sel.select(left);
                    sel.selectedKeys().clear();
                }
            }
        }
    }

    private static void writeWithDeadline(SocketChannel ch, ByteBuffer b, long deadline) throws IOException {
        ch.configureBlocking(false);
        try (Selector sel = Selector.open()) {
            ch.register(sel, SelectionKey.OP_WRITE);
            while (b.hasRemaining()) {
                if (ch.write(b) == 0) {
                    long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                    if (left <= 0) {
                        throw new IOException("timed out writing to " + remote(ch));
                    }
                    sel.select(left);
                    sel.selectedKeys().clear();
                }
            }
        }
    }

    static InetSocketAddress parse(String hostPort) {
        Objects.requireNonNull(hostPort, "address");
        String s = hostPort.trim();
        int colon = s.lastIndexOf(':');
        if (colon <= 0 || colon == s.length() - 1) {
            throw new IllegalArgumentException("address must be host:port, got '" + hostPort + "'");
        }
        String host = s.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port;
        try {
            port = Integer.parseInt(s.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad port in '" + hostPort + "'", e);
        }
        try {
            return new InetSocketAddress(InetAddress.getByName(host), port);
        } catch (UnknownHostException e) {
            return InetSocketAddress.createUnresolved(host, port);
        }
    }

    // ------------------------------------------------------------------ Collective

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int worldSize() {
        return world;
    }

    @Override
    public int generation() {
        return gen;
    }

    @Override
    public String backend() {
        return "ring";
    }

    public CollectiveOptions options() {
        return options;
    }

    /** "shm" or "tcp" for the data link to the next rank ("none" for world size 1). */
    public String transportToNext() {
        return world == 1 ? "none" : shmOut != null ? "shm" : "tcp";
    }

    /** "shm" or "tcp" for the data link from the previous rank ("none" for world size 1). */
    public String transportFromPrev() {
        return world == 1 ? "none" : shmIn != null ? "shm" : "tcp";
    }

    @Override
    public synchronized void allReduceSum(ByteBuffer buffer, int count) {
        checkRegion(buffer, count);
        if (world == 1) {
            checkUsable();
            return;
        }
        if (buffer.isDirect()) {
            run(Frames.OP_ALLREDUCE, buffer, count, 0);
        } else {
            ByteBuffer s = stageIn(buffer, count);
            run(Frames.OP_ALLREDUCE, s, count, 0);
            stageOut(s, buffer, count);
        }
    }

    @Override
    public synchronized void allReduceSum(FloatBuffer buffer, int count) {
        checkRegion(buffer, count);
        if (world == 1) {
            checkUsable();
            return;
        }
        ByteBuffer alias = count == 0 ? EMPTY : floatAlias(buffer, count);
        if (alias != null) {
            run(Frames.OP_ALLREDUCE, alias, count, 0);
        } else {
            ByteBuffer s = stageIn(buffer, count);
            run(Frames.OP_ALLREDUCE, s, count, 0);
            stageOut(s, buffer, count);
        }
    }

    @Override
    public synchronized void broadcast(ByteBuffer buffer, int count, int root) {
        checkRegion(buffer, count);
        checkRank(root, world);
        if (world == 1) {
            checkUsable();
            return;
        }
        if (buffer.isDirect()) {
            run(Frames.OP_BROADCAST, buffer, count, root);
        } else {
            ByteBuffer s = stageIn(buffer, count);
            run(Frames.OP_BROADCAST, s, count, root);
            stageOut(s, buffer, count);
        }
    }

    @Override
    public synchronized void broadcast(FloatBuffer buffer, int count, int root) {
        checkRegion(buffer, count);
        checkRank(root, world);
        if (world == 1) {
            checkUsable();
            return;
        }
        ByteBuffer alias = count == 0 ? EMPTY : floatAlias(buffer, count);
        if (alias != null) {
            run(Frames.OP_BROADCAST, alias, count, root);
        } else {
            ByteBuffer s = stageIn(buffer, count);
            run(Frames.OP_BROADCAST, s, count, root);
            stageOut(s, buffer, count);
        }
    }

    @Override
    public synchronized void barrier() {
        if (world == 1) {
            checkUsable();
            return;
        }
        run(Frames.OP_BARRIER, EMPTY, 0, 0);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        abortLinks(ShmLink.ABORT_CLOSED);
        closeQuietly(next);
        closeQuietly(prev);
        aliasKey = null;
        aliasValue = null;
        viewKey = null;
        closeQuietly(selPrev);
        closeQuietly(selNext);
        closeQuietly(selBoth);
        if (watchdogTask != null) {
            watchdogTask.cancel(false);
        }
        if (sender != null) {
            LockSupport.unpark(sender);
        }
    }

    @Override
    public String toString() {
        return "RingCollective{rank=" + rank + ", world=" + world + ", generation=" + gen + '}';
    }

    // ------------------------------------------------------------------ buffers

    private static void checkRank(int r, int n) {
        if (n < 1) {
            throw new IllegalArgumentException("world size must be >= 1, got " + n);
        }
        if (r < 0 || r >= n) {
            throw new IllegalArgumentException("rank " + r + " out of range [0, " + n + ")");
        }
    }

    private static void checkRegion(java.nio.Buffer buffer, int count) {
        Objects.requireNonNull(buffer, "buffer");
        int elem = buffer instanceof ByteBuffer ? 4 : 1;
        if (count < 0 || (long) count * elem > buffer.remaining()) {
            throw new IllegalArgumentException("count " + count + " float32 elements do not fit the buffer's "
                    + buffer.remaining() + (elem == 4 ? " remaining bytes" : " remaining floats"));
        }
        if (buffer.isReadOnly()) {
            throw new IllegalArgumentException("buffer is read-only");
        }
    }

    private ByteBuffer floatAlias(FloatBuffer fb, int count) {
        if (fb == aliasKey && fb.position() == aliasPos && count == aliasCount) {
            return aliasValue;
        }
        ByteBuffer a = Buffers.alias(fb, count);
        if (a != null) {
            aliasKey = fb;
            aliasPos = fb.position();
            aliasCount = count;
            aliasValue = a;
        }
        return a;
    }

    private ByteBuffer stagingBuffer(int bytes, ByteOrder order) {
        if (staging == null || staging.capacity() < bytes) {
            staging = ByteBuffer.allocateDirect(Math.max(bytes, 4096));
        }
        ByteBuffer s = staging.duplicate().order(order);
        s.clear().limit(bytes);
        return s;
    }

    private ByteBuffer stageIn(ByteBuffer src, int count) {
        ByteBuffer s = stagingBuffer(count * 4, src.order());
        ByteBuffer d = src.duplicate();
        d.limit(d.position() + count * 4);
        s.put(d);
        s.flip();
        return s;
    }

    private void stageOut(ByteBuffer s, ByteBuffer dst, int count) {
        ByteBuffer d = dst.duplicate();
        d.limit(d.position() + count * 4);
        s.position(0).limit(count * 4);
        d.put(s);
    }

    private ByteBuffer stageIn(FloatBuffer src, int count) {
        ByteBuffer s = stagingBuffer(count * 4, src.order());
        FloatBuffer d = src.duplicate();
        d.limit(d.position() + count);
        s.asFloatBuffer().put(d);
        return s;
    }

    private void stageOut(ByteBuffer s, FloatBuffer dst, int count) {
        FloatBuffer d = dst.duplicate();
        d.limit(d.position() + count);
        s.position(0).limit(count * 4);
        d.put(s.asFloatBuffer());
    }

    /** Views over [position, position + count*4) of a direct buffer: one per thread plus a float view. */
    private void selectViews(ByteBuffer buffer, int count) {
        int pos = buffer.position();
        if (buffer == viewKey && pos == viewKeyPos && count == viewKeyCount && buffer.order() == viewKeyOrder) {
            return;
        }
        ByteBuffer region = buffer.duplicate();
        region.clear().position(pos).limit(pos + count * 4);
        region = region.slice().order(buffer.order());
        viewCaller = region.duplicate().order(buffer.order());
        viewSender = region.duplicate().order(buffer.order());
        viewFloats = region.asFloatBuffer();
        viewKey = buffer;
        viewKeyPos = pos;
        viewKeyCount = count;
        viewKeyOrder = buffer.order();
    }

    private FloatBuffer scratchFloats(ByteOrder order) {
        if (order == ByteOrder.LITTLE_ENDIAN) {
            if (scratchFloatsLE == null) {
                scratchFloatsLE = scratch.duplicate().clear().order(order).asFloatBuffer();
            }
            return scratchFloatsLE;
        }
        if (scratchFloatsBE == null) {
            scratchFloatsBE = scratch.duplicate().clear().order(order).asFloatBuffer();
        }
        return scratchFloatsBE;
    }

    // ------------------------------------------------------------------ operation plan

    private static int mod(int a, int n) {
        int m = a % n;
        return m < 0 ? m + n : m;
    }

    private int segStart(int seg) {
        return (int) ((long) seg * opCount / world);
    }

    /** Element range [start, end) of chunk k of segment seg, written as start | (long) end << 32. */
    private long chunkRange(int seg, int k) {
        int s = segStart(seg);
        int len = segStart(seg + 1) - s;
        int a = s + (int) ((long) k * len / opK);
        int b = s + (int) ((long) (k + 1) * len / opK);
        return (a & 0xFFFFFFFFL) | ((long) b << 32);
    }

    private long wholeRange(int k) {
        int a = (int) ((long) k * opCount / opK);
        int b = (int) ((long) (k + 1) * opCount / opK);
        return (a & 0xFFFFFFFFL) | ((long) b << 32);
    }

    private long sendRange(int i) {
        if (opDirect) {
            return (long) opCount << 32;
        }
        if (opCode == Frames.OP_ALLREDUCE) {
            int s = i / opK;
            int k = i % opK;
            int seg = s < world - 1 ? mod(rank - s, world) : mod(rank + 1 - (s - (world - 1)), world);
            return chunkRange(seg, k);
        }
        if (opCode == Frames.OP_BROADCAST) {
            return wholeRange(i);
        }
        return 0L;
    }

    private long recvRange(int j) {
        if (opDirect) {
            return (long) opCount << 32;
        }
        if (opCode == Frames.OP_ALLREDUCE) {
            int s = j / opK;
            int k = j % opK;
            int seg = s < world - 1 ? mod(rank - s - 1, world) : mod(rank - (s - (world - 1)), world);
            return chunkRange(seg, k);
        }
        if (opCode == Frames.OP_BROADCAST) {
            return wholeRange(j);
        }
        return 0L;
    }

    private boolean recvReduces(int j) {
        return opDirect || (opCode == Frames.OP_ALLREDUCE && j / opK < world - 1);
    }

    /** Number of received items send item i waits for. */
    private int need(int i) {
        if (opDepLag == 0) {
            return i + 1;
        }
        return i >= opDepLag ? i - opDepLag + 1 : 0;
    }

    private void plan(short op, ByteBuffer buffer, int count, int root) {
        opCode = op;
        opCount = count;
        opAux = root;
        long bytes = (long) count * 4;
        boolean small = bytes <= options.smallMessageBytes();
        opDirect = op == Frames.OP_ALLREDUCE && world == 2 && small;
        if (opDirect) {
            // a0 + a1 on rank 0 and a1 + a0 on rank 1: IEEE addition commutes, results are bit-identical
            opK = 1;
            opSendItems = 1;
            opRecvItems = 1;
            opDepLag = Integer.MAX_VALUE;
        } else if (op == Frames.OP_ALLREDUCE) {
            long maxSegBytes = ((long) count + world - 1) / world * 4;
            opK = small ? 1 : (int) Math.max(1, (maxSegBytes + options.chunkBytes() - 1) / options.chunkBytes());
            opSendItems = 2 * (world - 1) * opK;
            opRecvItems = opSendItems;
            opDepLag = opK;
        } else if (op == Frames.OP_BROADCAST) {
            opK = small ? 1 : (int) Math.max(1, (bytes + options.chunkBytes() - 1) / options.chunkBytes());
            boolean isRoot = rank == root;
            opRecvItems = isRoot ? 0 : opK;
            opSendItems = nextRank == root ? 0 : opK;
            opDepLag = isRoot ? Integer.MAX_VALUE : 0;
        } else {
            opK = 1;
            opSendItems = world - 1;
            opRecvItems = world - 1;
            opDepLag = 1;
        }
        if (count > 0) {
            selectViews(buffer, count);
            opCallerView = viewCaller;
            opSenderView = viewSender;
            opFloats = viewFloats;
            opScratchFloats = scratchFloats(buffer.order());
        } else {
            opCallerView = EMPTY;
            opSenderView = EMPTY;
            opFloats = null;
            opScratchFloats = null;
        }
    }

    // ------------------------------------------------------------------ running an operation

    private void checkUsable() {
        CollectiveException f = failure.get();
        if (f != null) {
            throw new CollectiveException("rank " + rank + ": the group is unusable after an earlier failure: "
                    + f.getMessage(), f.peerRank(), f);
        }
        if (closed) {
            throw new CollectiveException("rank " + rank + ": collective is closed");
        }
    }

    private void run(short op, ByteBuffer buffer, int count, int root) {
        checkUsable();
        plan(op, buffer, count, root);
        opSeq = ++seq;
        callerThread = Thread.currentThread();
        recvDone = 0;
        sentDone = 0;
        opDeadline = System.nanoTime() + timeoutNanos;
        opActive = true;
        try {
            boolean sequential = (long) count * 4 <= options.smallMessageBytes() || opSendItems == 0
                    || opRecvItems == 0;
            if (shmOut != null && shmIn != null && (sequential || !SHM_SENDER_THREAD)) {
                runShm();
            } else if (sequential) {
                runSequential();
            } else {
                runPipelined();
            }
        } catch (CollectiveException e) {
            throw failWith(e);
        } catch (RuntimeException | Error e) {
            failWith(new CollectiveException("rank " + rank + ": internal error during " + describeOp() + ": " + e, e));
            throw e;
        } finally {
            opActive = false;
        }
    }

    /** Latency path: send what is ready, receive the next item, on the calling thread. */
    private void runSequential() {
        int i = 0;
        for (int j = 0; ; j++) {
            while (i < opSendItems && need(i) <= j) {
                sendItem(i, callerHdr, callerVec, opCallerView);
                i++;
                sentDone = i;
            }
            if (j >= opRecvItems) {
                break;
            }
            recvItem(j);
            recvDone = j + 1;
        }
    }

    /** Bandwidth path: the sender thread streams items while this thread receives and reduces. */
    private void runPipelined() {
        int job = opSeq;
        jobSeq = job;
        LockSupport.unpark(sender);
        for (int j = 0; j < opRecvItems; j++) {
            recvItem(j);
            recvDone = j + 1;
            if (sender.waiting) {
                LockSupport.unpark(sender);
            }
        }
        int spins = 0;
        while (senderDoneSeq != job) {
            CollectiveException f = failure.get();
            if (f != null) {
                throw new CollectiveException(f.getMessage(), f.peerRank(), f);
            }
            if (spins++ < SPINS) {
                Thread.onSpinWait();
            } else {
                callerWaiting = true;
                if (senderDoneSeq != job && failure.get() == null) {
                    LockSupport.parkNanos(this, 2_000_000L);
                }
                callerWaiting = false;
            }
        }
        CollectiveException f = failure.get();
        if (f != null) {
            throw new CollectiveException(f.getMessage(), f.peerRank(), f);
        }
    }

    /**
     * Both links in shared memory: one thread, no hand-off. Publishes every frame that is ready
     * and has a free slot, consumes the next incoming frame, and idles (spin, yield, park) only
     * when neither can progress.
     */
    private void runShm() {
        int i = 0;
        int j = 0;
        while (i < opSendItems || j < opRecvItems) {
            boolean progress = false;
            while (i < opSendItems && need(i) <= j && shmOut.canPublish()) {
                shmPublish(i, opSenderView);
                i++;
                sentDone = i;
                progress = true;
            }
            if (j < opRecvItems && shmIn.available()) {
                shmConsume(j);
                j++;
                recvDone = j;
                progress = true;
            }
            if (!progress) {
                boolean data = j < opRecvItems;
                boolean slot = i < opSendItems && need(i) <= j;
                awaitShm(data, slot);
            }
        }
    }

    /**
     * Waits until shared-memory progress is possible: frame available from prev ({@code data})
     * and/or a free slot towards next ({@code slot}). Spins for a few tens of microseconds, then
     * raises its sleeping flag(s) and blocks on the links' TCP connections, which the peer rings
     * with a doorbell byte after its next publish/consume. A closed connection (dead peer), a
     * peer's abort flag, this group's failure or close end the wait with an exception.
     */
    private void awaitShm(boolean data, boolean slot) {
        long start = System.nanoTime();
        long budget = spinNanos;
        for (int k = 0; ; k++) {
            if ((data && shmIn.available()) || (slot && shmOut.canPublish())) {
                spinNanos = Math.min(MAX_SPIN_NANOS, budget + budget / 4); // spinning pays: allow a little more
                return;
            }
            if ((k & 31) == 31) {
                CollectiveException gone = peerProblem(data, slot, false);
                if (gone != null) {
                    if ((data && shmIn.available()) || (slot && shmOut.canPublish())) {
                        return; // the peer published/consumed before it closed: finish this step
                    }
                    throw gone;
                }
                long spent = System.nanoTime() - start;
                if (spent > 2 * budget) {
                    spinNanos = Math.max(MIN_SPIN_NANOS, budget / 2); // the peer is slow or shares our CPU
                    break;
                }
                if (spent > budget) {
                    Thread.yield();
                    continue;
                }
            }
            Thread.onSpinWait();
        }
        Selector sel = data && slot ? selBoth : data ? selPrev : selNext;
        boolean eof = false;
        while (true) {
            if (data) {
                shmIn.setConsumerSleeping(true);
            }
            if (slot) {
                shmOut.setProducerSleeping(true);
            }
            try {
                if ((data && shmIn.available()) || (slot && shmOut.canPublish())) {
                    return;
                }
                CollectiveException gone = peerProblem(data, slot, eof);
                if (gone != null) {
                    throw gone;
                }
                sel.select(SLEEP_MILLIS);
                sel.selectedKeys().clear();
                if (data) {
                    eof |= drain(prev, doorbellInPrev);
                }
                if (slot) {
                    eof |= drain(next, doorbellInNext);
                }
            } catch (IOException e) {
                throw ioFailure(e, data);
            } catch (java.nio.channels.ClosedSelectorException e) {
                CollectiveException gone = peerProblem(data, slot, false);
                throw gone != null ? gone
                        : new CollectiveException("rank " + rank + ": collective closed during " + describeOp(), e);
            } finally {
                if (data) {
                    shmIn.setConsumerSleeping(false);
                }
                if (slot) {
                    shmOut.setProducerSleeping(false);
                }
            }
        }
    }

    /**
     * Before sleeping on the doorbell a waiter spins for {@code spinNanos}, then yields as long
     * again. The budget adapts per rank: it grows while peers answer within it (idle CPUs, a few
     * microseconds per step) and halves each time the wait ends in a sleep (peer busy or sharing
     * this CPU, where spinning would only steal its time).
     */
    private static final long MAX_SPIN_NANOS = 40_000L;
    private static final long MIN_SPIN_NANOS = 2_000L;
    private long spinNanos = MAX_SPIN_NANOS / 2;
    private static final long SLEEP_MILLIS = 20L;

    /**
     * Why the wait cannot succeed, or null: this group failed or was closed, a peer set its abort
     * flag, or (when {@code eof}) a link's TCP connection reached end of stream.
     */
    private CollectiveException peerProblem(boolean watchPrev, boolean watchNext, boolean eof) {
        CollectiveException f = failure.get();
        if (f != null) {
            return new CollectiveException(f.getMessage(), f.peerRank(), f);
        }
        if (closed) {
            return new CollectiveException("rank " + rank + ": collective closed during " + describeOp());
        }
        if (watchPrev && shmIn != null) {
            int a = shmIn.abortFlag();
            if (a != ShmLink.ABORT_NONE) {
                return peerAborted(prevRank, a);
            }
        }
        if (watchNext && shmOut != null) {
            int a = shmOut.abortFlag();
            if (a != ShmLink.ABORT_NONE) {
                return peerAborted(nextRank, a);
            }
        }
        if (eof) {
            int peer = watchPrev ? prevRank : nextRank;
            return new CollectiveException("rank " + rank + ": connection to rank " + peer + " closed during "
                    + describeOp() + ": peer rank " + peer + " failed or closed", peer, null);
        }
        return null;
    }

    /** Reads doorbell bytes off a shared-memory link's TCP connection; true at end of stream (peer gone). */
    private boolean drain(SocketChannel ch, ByteBuffer b) throws IOException {
        while (true) {
            b.clear();
            int n = ch.read(b);
            if (n == 0) {
                return false;
            }
            if (n < 0) {
                return true;
            }
        }
    }

    /** Wakes a sleeping peer: one byte on the link's TCP connection (never blocks; a full buffer already wakes it). */
    private void ring(SocketChannel ch, ByteBuffer b) {
        try {
            b.clear();
            ch.write(b);
        } catch (IOException e) {
            // the peer is gone; the next wait on this link reports it
        }
    }

    private CollectiveException peerAborted(int peer, int flag) {
        return new CollectiveException("rank " + rank + ": peer rank " + peer + " failed or closed during "
                + describeOp() + " (it " + (flag == ShmLink.ABORT_CLOSED ? "closed" : "aborted")
                + " the shared-memory link)", peer, null);
    }

    private void abortLinks(int flag) {
        if (shmOut != null) {
            shmOut.setAbort(flag);
        }
        if (shmIn != null) {
            shmIn.setAbort(flag);
        }
    }

    /** Writes send item i into the next free slot (the caller checked {@code canPublish()}). */
    private void shmPublish(int i, ByteBuffer view) {
        long r = sendRange(i);
        int a = (int) r;
        int len = ((int) (r >>> 32) - a) * 4;
        int base = shmOut.nextSlot();
        Frames.putAt(shmOut.headers, base, gen, opSeq, i, opCode, rank, len, opCount, opAux);
        if (len > 0) {
            view.limit(view.capacity());
            view.position(a * 4);
            view.limit(a * 4 + len);
            shmOut.putPayload(view, len);
        }
        shmOut.publish();
        if (shmOut.consumerSleeping()) {
            ring(next, doorbellOutNext);
        }
    }

    /** Checks, reduces or copies, and releases the next incoming slot (the caller checked {@code available()}). */
    private void shmConsume(int j) {
        long r = recvRange(j);
        int a = (int) r;
        int len = ((int) (r >>> 32) - a) * 4;
        int base = shmIn.currentSlot();
        checkHeader(shmIn.headers, base, j, len);
        if (len > 0) {
            if (recvReduces(j)) {
                Reduce.add(opFloats, a, shmIn.floats(opCallerView.order()), (base + ShmLink.SLOT_HEADER) >> 2, len >> 2);
            } else {
                ByteBuffer t = opCallerView;
                t.limit(t.capacity());
                t.position(a * 4);
                t.limit(a * 4 + len);
                shmIn.getPayload(t, len);
            }
        }
        shmIn.consume();
        if (shmIn.producerSleeping()) {
            ring(prev, doorbellOutPrev);
        }
    }

    private void sendItem(int i, ByteBuffer hdr, ByteBuffer[] vec, ByteBuffer view) {
        if (shmOut != null) {
            if (!shmOut.canPublish()) {
                awaitShm(false, true);
            }
            shmPublish(i, view);
            return;
        }
        long r = sendRange(i);
        int a = (int) r;
        int b = (int) (r >>> 32);
        int len = (b - a) * 4;
        Frames.put(hdr, gen, opSeq, i, opCode, rank, len, opCount, opAux);
        ByteBuffer payload;
        if (len == 0) {
            payload = EMPTY;
        } else {
            view.limit(view.capacity());
            view.position(a * 4);
            view.limit(a * 4 + len);
            payload = view;
        }
        vec[0] = hdr;
        vec[1] = payload;
        long total = Frames.HEADER_BYTES + (long) len;
        long done = 0;
        try {
            while (done < total) {
                done += next.write(vec);
            }
        } catch (IOException e) {
            throw ioFailure(e, false);
        }
    }

    private void recvItem(int j) {
        if (shmIn != null) {
            if (!shmIn.available()) {
                awaitShm(true, false);
            }
            shmConsume(j);
            return;
        }
        long r = recvRange(j);
        int a = (int) r;
        int b = (int) (r >>> 32);
        int len = (b - a) * 4;
        boolean reduce = recvReduces(j);
        ByteBuffer target;
        if (len == 0) {
            target = EMPTY;
        } else if (reduce) {
            target = scratch;
            target.clear().limit(len);
        } else {
            target = opCallerView;
            target.limit(target.capacity());
            target.position(a * 4);
            target.limit(a * 4 + len);
        }
        recvHdr.clear();
        recvVec[0] = recvHdr;
        recvVec[1] = target;
        long total = Frames.HEADER_BYTES + (long) len;
        long done = 0;
        boolean checked = false;
        try {
            while (done < total) {
                long n = prev.read(recvVec);
                if (n < 0) {
                    throw peerClosed(null);
                }
                done += n;
                if (!checked && done >= Frames.HEADER_BYTES) {
                    checkHeader(recvHdr, 0, j, len);
                    checked = true;
                }
            }
        } catch (IOException e) {
            throw ioFailure(e, true);
        }
        if (!checked) {
            checkHeader(recvHdr, 0, j, len);
        }
        if (reduce && len > 0) {
            Reduce.add(opFloats, a, opScratchFloats, 0, len >> 2);
        }
    }

    private void checkHeader(ByteBuffer h, int b, int item, int len) {
        int magic = h.getInt(b + Frames.O_MAGIC);
        String problem = null;
        if (magic != Frames.MAGIC) {
            problem = String.format("bad magic 0x%08X (expected 0x%08X)", magic, Frames.MAGIC);
        } else if (h.getInt(b + Frames.O_GEN) != gen) {
            problem = "generation " + h.getInt(b + Frames.O_GEN) + ", expected " + gen;
        } else if (h.getShort(b + Frames.O_OP) != opCode) {
            problem = Frames.opName(h.getShort(b + Frames.O_OP)) + " frame, expected " + Frames.opName(opCode)
                    + " (ranks called different collectives)";
        } else if (h.getInt(b + Frames.O_SEQ) != opSeq || h.getInt(b + Frames.O_ITEM) != item) {
            problem = "operation #" + h.getInt(b + Frames.O_SEQ) + " item " + h.getInt(b + Frames.O_ITEM) + ", expected #" + opSeq
                    + " item " + item;
        } else if (h.getShort(b + Frames.O_SRC) != prevRank) {
            problem = "sender rank " + h.getShort(b + Frames.O_SRC) + ", expected " + prevRank;
        } else if (h.getInt(b + Frames.O_COUNT) != opCount) {
            problem = "element count " + h.getInt(b + Frames.O_COUNT) + ", this rank has " + opCount
                    + " (ranks passed different counts)";
        } else if (h.getInt(b + Frames.O_LENGTH) != len) {
            problem = "payload length " + h.getInt(b + Frames.O_LENGTH) + " bytes, expected " + len;
        } else if (h.getInt(b + Frames.O_AUX) != opAux) {
            problem = "root " + h.getInt(b + Frames.O_AUX) + ", this rank has root " + opAux;
        }
        if (problem != null) {
            throw new CollectiveException("rank " + rank + ": malformed frame from rank " + prevRank + " during "
                    + describeOp() + ": " + problem, prevRank, null);
        }
    }

    private String describeOp() {
        return Frames.opName(opCode) + " #" + opSeq + " (generation " + gen + ", " + opCount + " elements)";
    }

    private CollectiveException peerClosed(IOException e) {
        return new CollectiveException("rank " + rank + ": connection from rank " + prevRank + " closed during "
                + describeOp() + ": peer rank " + prevRank + " failed or closed"
                + (e == null ? "" : " (" + e.getMessage() + ")"), prevRank, e);
    }

    private CollectiveException ioFailure(IOException e, boolean receiving) {
        CollectiveException f = failure.get();
        if (f != null) {
            return new CollectiveException(f.getMessage(), f.peerRank(), f);
        }
        if (e instanceof AsynchronousCloseException || e instanceof ClosedChannelException) {
            if (closed) {
                return new CollectiveException("rank " + rank + ": collective closed during " + describeOp(), e);
            }
        }
        if (receiving) {
            return peerClosed(e);
        }
        return new CollectiveException("rank " + rank + ": sending to rank " + nextRank + " failed during "
                + describeOp() + ": peer rank " + nextRank + " failed or closed (" + e.getMessage() + ")", nextRank, e);
    }

    /** Records the first failure, closes both connections (peers fail fast) and returns what to throw. */
    private CollectiveException failWith(CollectiveException e) {
        CollectiveException first = failure.compareAndExchange(null, e);
        if (first == null) {
            log.warn("{}", e.getMessage());
        }
        abortLinks(ShmLink.ABORT_FAILED);
        closeQuietly(next);
        closeQuietly(prev);
        Sender s = sender;
        if (s != null) {
            LockSupport.unpark(s);
        }
        Thread c = callerThread;
        if (c != null) {
            LockSupport.unpark(c);
        }
        if (first == null || first == e || e.getCause() == first) {
            return e;
        }
        return new CollectiveException(first.getMessage(), first.peerRank(), first);
    }

    private void checkDeadline() {
        if (!opActive || failure.get() != null || closed) {
            return;
        }
        long now = System.nanoTime();
        if (now - opDeadline > 0 && opActive) {
            failWith(new CollectiveException("rank " + rank + ": " + describeOp() + " timed out after "
                    + options.timeout().toMillis() + " ms (received " + recvDone + "/" + opRecvItems + " frames from rank "
                    + prevRank + ", sent " + sentDone + "/" + opSendItems + " to rank " + nextRank
                    + "): a peer is stuck, slow or not calling the same collective", -1, null));
        }
    }

    // ------------------------------------------------------------------ sender thread

    private final class Sender extends Thread {
        private final ByteBuffer hdr = Frames.newHeader();
        private final ByteBuffer[] vec = new ByteBuffer[2];
        volatile boolean waiting;

        Sender() {
            super("kiln-ring-sender-r" + rank);
            setDaemon(true);
        }

        @Override
        public void run() {
            int done = 0;
            while (true) {
                int spins = 0;
                while (jobSeq == done) {
                    if (closed || failure.get() != null) {
                        return;
                    }
                    if (spins++ < SPINS) {
                        Thread.onSpinWait();
                    } else {
                        waiting = true;
                        if (jobSeq == done && !closed) {
                            LockSupport.parkNanos(this, 50_000_000L);
                        }
                        waiting = false;
                    }
                }
                int job = jobSeq;
                try {
                    runJob();
                } catch (CollectiveException e) {
                    failWith(e);
                } catch (RuntimeException | Error e) {
                    failWith(new CollectiveException("rank " + rank + ": sender failed: " + e, e));
                }
                done = job;
                senderDoneSeq = job;
                if (callerWaiting) {
                    LockSupport.unpark(callerThread);
                }
            }
        }

        private void runJob() {
            for (int i = 0; i < opSendItems; i++) {
                int needed = need(i);
                int spins = 0;
                while (recvDone < needed) {
                    if (failure.get() != null || closed) {
                        return;
                    }
                    if (spins++ < SPINS) {
                        Thread.onSpinWait();
                    } else {
                        waiting = true;
                        if (recvDone < needed && failure.get() == null) {
                            LockSupport.parkNanos(this, 2_000_000L);
                        }
                        waiting = false;
                    }
                }
                sendItem(i, hdr, vec, opSenderView);
                sentDone = i + 1;
            }
        }
    }

    // ------------------------------------------------------------------ util

    private static String remote(SocketChannel ch) {
        try {
            return String.valueOf(ch.getRemoteAddress());
        } catch (IOException | RuntimeException e) {
            return "?";
        }
    }

    private static void sleepMillis(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CollectiveException("interrupted while forming the ring", e);
        }
    }

    private static void closeQuietly(java.io.Closeable c) {
        if (c != null) {
            try {
                c.close();
            } catch (IOException | RuntimeException ignored) {
                // nothing to do
            }
        }
    }
}
