package io.kiln.collective.nccl;

import static org.bytedeco.cuda.global.cudart.cudaErrorNotReady;
import static org.bytedeco.cuda.global.cudart.cudaGetDeviceCount;
import static org.bytedeco.cuda.global.cudart.cudaSetDevice;
import static org.bytedeco.cuda.global.cudart.cudaStreamCreate;
import static org.bytedeco.cuda.global.cudart.cudaStreamDestroy;
import static org.bytedeco.cuda.global.cudart.cudaStreamQuery;
import static org.bytedeco.cuda.global.cudart.cudaSuccess;
import static org.bytedeco.cuda.global.nccl.NCCL_UNIQUE_ID_BYTES;
import static org.bytedeco.cuda.global.nccl.ncclAllReduce;
import static org.bytedeco.cuda.global.nccl.ncclBroadcast;
import static org.bytedeco.cuda.global.nccl.ncclCommAbort;
import static org.bytedeco.cuda.global.nccl.ncclCommDestroy;
import static org.bytedeco.cuda.global.nccl.ncclCommGetAsyncError;
import static org.bytedeco.cuda.global.nccl.ncclCommInitRank;
import static org.bytedeco.cuda.global.nccl.ncclFloat32;
import static org.bytedeco.cuda.global.nccl.ncclGetUniqueId;
import static org.bytedeco.cuda.global.nccl.ncclGetVersion;
import static org.bytedeco.cuda.global.nccl.ncclInProgress;
import static org.bytedeco.cuda.global.nccl.ncclSuccess;
import static org.bytedeco.cuda.global.nccl.ncclSum;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Objects;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;

import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.global.cudart;
import org.bytedeco.cuda.global.nccl;
import org.bytedeco.cuda.nccl.ncclComm;
import org.bytedeco.cuda.nccl.ncclUniqueId;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.Pointer;

import io.kiln.collective.Collective;
import io.kiln.collective.CollectiveException;
import io.kiln.collective.CollectiveOptions;

/**
 * GPU collectives through NCCL (JavaCPP CUDA presets). The JNI glue ships in the
 * {@code org.bytedeco:cuda} jars; {@code libnccl.so.2}, {@code libcudart} and the driver come from
 * the host (e.g. PyTorch's pip wheels: {@code site-packages/nvidia/nccl/lib} on LD_LIBRARY_PATH).
 *
 * <p>Group formation: rank 0 calls {@link #createUniqueId()} and hands the bytes to every rank
 * (through the coordinator); each rank then calls {@link #open(int, int, byte[], int)} with its
 * own CUDA device. NCCL wants one device per rank within a communicator.
 *
 * <p>The device API ({@link #allReduceSum(Pointer, long)}, {@link #broadcast(Pointer, long, int)})
 * works in place on cudaMalloc'd float32 memory; the {@link Collective} host-buffer methods copy
 * host to device, reduce and copy back. Every call waits for its stream with the group's timeout
 * and aborts the communicator on a timeout or an asynchronous NCCL error.
 */
public final class NcclCollective implements Collective {

    /** Whether NCCL can be used in this process, with a human-readable detail either way. */
    public record Availability(boolean available, String detail) {
    }

    private static volatile Availability probed;

    private final int rank;
    private final int world;
    private final int device;
    private final CollectiveOptions options;
    private final ncclComm comm;
    private final CUstream_st stream;
    private final DeviceBuffer barrierScratch;
    private final int[] asyncError = new int[1];
    private DeviceBuffer staging;
    private ByteBuffer hostStaging;
    private volatile CollectiveException failure;
    private volatile boolean closed;

    private NcclCollective(int rank, int world, int device, CollectiveOptions options, ncclComm comm,
                           CUstream_st stream) {
        this.rank = rank;
        this.world = world;
        this.device = device;
        this.options = options;
        this.comm = comm;
        this.stream = stream;
        this.barrierScratch = DeviceBuffer.allocate(device, 4);
    }

    // ------------------------------------------------------------------ availability

    /**
     * Loads the CUDA runtime and NCCL JNI libraries and counts devices, once per process.
     * Never throws: a missing GPU, driver, libnccl.so.2 or jar is reported in the detail.
     */
    public static synchronized Availability probe() {
        Availability a = probed;
        if (a != null) {
            return a;
        }
        try {
            Loader.load(cudart.class);
            Loader.load(nccl.class);
            int[] n = new int[1];
            int rc = cudaGetDeviceCount(n);
            if (rc != cudaSuccess) {
                a = new Availability(false, "cudaGetDeviceCount failed: CUDA error " + rc + " ("
                        + cudart.cudaGetErrorString(rc).getString() + ")");
            } else if (n[0] == 0) {
                a = new Availability(false, "no CUDA device");
            } else {
                int[] v = new int[1];
                ncclGetVersion(v);
                int[] rt = new int[1];
                int[] drv = new int[1];
                cudart.cudaRuntimeGetVersion(rt);
                cudart.cudaDriverGetVersion(drv);
                a = new Availability(true, "NCCL " + ncclVersion(v[0]) + ", CUDA runtime " + cudaVersion(rt[0])
                        + ", driver " + cudaVersion(drv[0]) + ", " + n[0] + " device(s)");
            }
        } catch (Throwable t) {
            a = new Availability(false, describe(t));
        }
        probed = a;
        return a;
    }

    static void requireAvailable() {
        Availability a = probe();
        if (!a.available()) {
            throw new CollectiveException("NCCL is not usable in this process: " + a.detail());
        }
    }

    static String ncclVersion(int code) {
        // NCCL_VERSION_CODE: major*10000 + minor*100 + patch since 2.9 (major*1000 + minor*100 + patch before)
        if (code >= 10000) {
            return (code / 10000) + "." + (code / 100 % 100) + "." + (code % 100);
        }
        return (code / 1000) + "." + (code / 100 % 10) + "." + (code % 100);
    }

    static String cudaVersion(int code) {
        return (code / 1000) + "." + (code % 1000 / 10);
    }

    /** One line: the innermost cause, trimmed of long search paths, plus a hint. */
    static String describe(Throwable t) {
        Throwable root = t;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String m = String.valueOf(root.getMessage());
        int slash = m.lastIndexOf('/', Math.max(0, m.indexOf(".so")));
        if (m.startsWith("/") && slash > 0) {
            m = m.substring(slash + 1); // drop the JavaCPP cache directory
        }
        if (m.length() > 300) {
            m = m.substring(0, 300) + "...";
        }
        String hint = "";
        if (m.contains("libcuda.so")) {
            hint = " (no NVIDIA driver on this node)";
        } else if (m.contains("libnccl.so")) {
            hint = " (put libnccl.so.2 on LD_LIBRARY_PATH, e.g. PyTorch's site-packages/nvidia/nccl/lib)";
        } else if (m.contains("libcudart.so")) {
            hint = " (the CUDA runtime matching the JavaCPP cuda preset is not on LD_LIBRARY_PATH)";
        } else if (root instanceof NoClassDefFoundError || root instanceof ClassNotFoundException) {
            hint = " (the org.bytedeco cuda/javacpp jars are not on the class path)";
        }
        return root.getClass().getSimpleName() + ": " + m + hint;
    }

    // ------------------------------------------------------------------ forming the group

    /** rank 0 calls this and distributes the bytes (128) to every rank of the group. */
    public static byte[] createUniqueId() {
        requireAvailable();
        ncclUniqueId id = new ncclUniqueId();
        int rc = ncclGetUniqueId(id);
        if (rc != ncclSuccess) {
            throw new CollectiveException("ncclGetUniqueId failed: " + Cuda.ncclError(rc));
        }
        return toBytes(id);
    }

    static byte[] toBytes(ncclUniqueId id) {
        byte[] b = new byte[NCCL_UNIQUE_ID_BYTES];
        for (int i = 0; i < b.length; i++) {
            b[i] = id.internal(i);
        }
        return b;
    }

    static ncclUniqueId fromBytes(byte[] b) {
        if (b == null || b.length != NCCL_UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("an NCCL unique id has " + NCCL_UNIQUE_ID_BYTES + " bytes, got "
                    + (b == null ? "null" : b.length));
        }
        ncclUniqueId id = new ncclUniqueId();
        for (int i = 0; i < b.length; i++) {
            id.internal(i, b[i]);
        }
        return id;
    }

    public static NcclCollective open(int rank, int world, byte[] uniqueId, int device) {
        return open(rank, world, uniqueId, device, CollectiveOptions.defaults());
    }

    /**
     * Joins the communicator identified by {@code uniqueId} as {@code rank} of {@code world} on
     * CUDA {@code device}; blocks until every rank has joined or the connect timeout passes.
     */
    public static NcclCollective open(int rank, int world, byte[] uniqueId, int device, CollectiveOptions options) {
        Objects.requireNonNull(options, "options");
        if (world < 1 || rank < 0 || rank >= world) {
            throw new IllegalArgumentException("rank " + rank + " out of range for world size " + world);
        }
        requireAvailable();
        ncclUniqueId id = fromBytes(uniqueId);
        Cuda.check(cudaSetDevice(device), "cudaSetDevice(" + device + ")");
        CUstream_st stream = new CUstream_st();
        Cuda.check(cudaStreamCreate(stream), "cudaStreamCreate");
        ncclComm comm = new ncclComm();
        FutureTask<Integer> init = new FutureTask<>(() -> {
            Cuda.check(cudaSetDevice(device), "cudaSetDevice(" + device + ")");
            return ncclCommInitRank(comm, world, id, rank);
        });
        Thread t = new Thread(init, "kiln-nccl-init-r" + rank);
        t.setDaemon(true);
        t.start();
        int rc;
        try {
            rc = init.get(options.connectTimeout().toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            throw new CollectiveException("rank " + rank + ": ncclCommInitRank (world " + world + ", device " + device
                    + ") did not complete within " + options.connectTimeout().toMillis()
                    + " ms: not every rank joined with the same unique id", e);
        } catch (ExecutionException e) {
            cudaStreamDestroy(stream);
            throw new CollectiveException("rank " + rank + ": ncclCommInitRank failed: " + describe(e.getCause()),
                    e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CollectiveException("interrupted during ncclCommInitRank", e);
        }
        if (rc != ncclSuccess) {
            cudaStreamDestroy(stream);
            throw new CollectiveException("rank " + rank + ": ncclCommInitRank(world " + world + ", device " + device
                    + ") failed: " + Cuda.ncclError(rc));
        }
        return new NcclCollective(rank, world, device, options, comm, stream);
    }

    // ------------------------------------------------------------------ device API

    /** In-place float32 sum of {@code count} elements of device memory (cudaMalloc'd, on this rank's device). */
    public synchronized void allReduceSum(Pointer deviceFloats, long count) {
        checkUsable();
        Cuda.check(cudaSetDevice(device), "cudaSetDevice");
        int rc = ncclAllReduce(deviceFloats, deviceFloats, count, ncclFloat32, ncclSum, comm, stream);
        if (rc != ncclSuccess) {
            throw fail("ncclAllReduce of " + count + " floats failed: " + Cuda.ncclError(rc));
        }
        await("all-reduce of " + count + " floats");
    }

    /** Out-of-place float32 sum: {@code recv = sum over ranks of send} (device memory, {@code count} elements). */
    public synchronized void allReduceSum(Pointer sendFloats, Pointer recvFloats, long count) {
        checkUsable();
        Cuda.check(cudaSetDevice(device), "cudaSetDevice");
        int rc = ncclAllReduce(sendFloats, recvFloats, count, ncclFloat32, ncclSum, comm, stream);
        if (rc != ncclSuccess) {
            throw fail("ncclAllReduce of " + count + " floats failed: " + Cuda.ncclError(rc));
        }
        await("all-reduce of " + count + " floats");
    }

    /** In-place broadcast of {@code count} float32 elements of device memory from {@code root}. */
    public synchronized void broadcast(Pointer deviceFloats, long count, int root) {
        checkUsable();
        if (root < 0 || root >= world) {
            throw new IllegalArgumentException("root " + root + " out of range [0, " + world + ")");
        }
        Cuda.check(cudaSetDevice(device), "cudaSetDevice");
        int rc = ncclBroadcast(deviceFloats, deviceFloats, count, ncclFloat32, root, comm, stream);
        if (rc != ncclSuccess) {
            throw fail("ncclBroadcast of " + count + " floats failed: " + Cuda.ncclError(rc));
        }
        await("broadcast of " + count + " floats from root " + root);
    }

    /** Polls the stream until the enqueued collective finished; aborts the communicator on error or timeout. */
    private void await(String what) {
        long deadline = System.nanoTime() + options.timeout().toNanos();
        int spins = 0;
        while (true) {
            int q = cudaStreamQuery(stream);
            if (q == cudaSuccess) {
                return;
            }
            if (q != cudaErrorNotReady) {
                throw fail(what + " failed on the stream: CUDA error " + q + " ("
                        + cudart.cudaGetErrorString(q).getString() + ")");
            }
            int rc = ncclCommGetAsyncError(comm, asyncError);
            if (rc == ncclSuccess && asyncError[0] != ncclSuccess && asyncError[0] != ncclInProgress) {
                throw fail(what + " failed: " + Cuda.ncclError(asyncError[0]) + " (a peer rank failed or closed)");
            }
            if (System.nanoTime() - deadline > 0) {
                throw fail(what + " timed out after " + options.timeout().toMillis()
                        + " ms: a peer is stuck, slow or not calling the same collective");
            }
            if (spins++ < 2000) {
                Thread.onSpinWait();
            } else {
                LockSupport.parkNanos(20_000L);
            }
        }
    }

    private CollectiveException fail(String message) {
        CollectiveException e = new CollectiveException("rank " + rank + " (nccl): " + message);
        if (failure == null) {
            failure = e;
            ncclCommAbort(comm); // unblocks peers: their collectives fail instead of hanging
        }
        return e;
    }

    private void checkUsable() {
        CollectiveException f = failure;
        if (f != null) {
            throw new CollectiveException("rank " + rank + " (nccl): the group is unusable after an earlier failure: "
                    + f.getMessage(), f);
        }
        if (closed) {
            throw new CollectiveException("rank " + rank + " (nccl): collective is closed");
        }
    }

    // ------------------------------------------------------------------ host-buffer convenience

    private DeviceBuffer staging(long bytes) {
        if (staging == null || staging.bytes() < bytes) {
            if (staging != null) {
                staging.close();
            }
            staging = DeviceBuffer.allocate(device, Math.max(bytes, 1 << 16));
        }
        return staging;
    }

    private Buffer hostDirect(Buffer b, int count, boolean copyIn) {
        if (b instanceof ByteBuffer && ((ByteBuffer) b).order() != ByteOrder.nativeOrder()) {
            throw new IllegalArgumentException("NCCL host buffers must be in native byte order");
        }
        if (b instanceof FloatBuffer && ((FloatBuffer) b).order() != ByteOrder.nativeOrder()) {
            throw new IllegalArgumentException("NCCL host buffers must be in native byte order");
        }
        if (b.isDirect()) {
            return b;
        }
        if (hostStaging == null || hostStaging.capacity() < count * 4) {
            hostStaging = ByteBuffer.allocateDirect(Math.max(count * 4, 4096)).order(ByteOrder.nativeOrder());
        }
        ByteBuffer s = hostStaging.duplicate().order(ByteOrder.nativeOrder());
        s.clear().limit(count * 4);
        if (copyIn) {
            if (b instanceof ByteBuffer) {
                ByteBuffer d = ((ByteBuffer) b).duplicate();
                d.limit(d.position() + count * 4);
                s.duplicate().put(d);
            } else {
                FloatBuffer d = ((FloatBuffer) b).duplicate();
                d.limit(d.position() + count);
                s.asFloatBuffer().put(d);
            }
        }
        return s;
    }

    private void copyBack(Buffer staged, Buffer b, int count) {
        if (staged == b) {
            return;
        }
        ByteBuffer s = ((ByteBuffer) staged).duplicate().order(ByteOrder.nativeOrder());
        s.position(0).limit(count * 4);
        if (b instanceof ByteBuffer) {
            ByteBuffer d = ((ByteBuffer) b).duplicate();
            d.limit(d.position() + count * 4);
            d.put(s);
        } else {
            FloatBuffer d = ((FloatBuffer) b).duplicate();
            d.limit(d.position() + count);
            d.put(s.asFloatBuffer());
        }
    }

    private void hostOp(Buffer b, int count, int root, boolean bcast) {
        int elem = b instanceof ByteBuffer ? 4 : 1;
        if (count < 0 || (long) count * elem > b.remaining()) {
            throw new IllegalArgumentException("count " + count + " float32 elements do not fit the buffer");
        }
        checkUsable();
        Buffer h = hostDirect(b, count, true);
        DeviceBuffer d = staging((long) count * 4);
        d.copyFromHost(h, (long) count * 4);
        if (bcast) {
            broadcast(d.pointer(), count, root);
        } else {
            allReduceSum(d.pointer(), count);
        }
        d.copyToHost(h, (long) count * 4);
        copyBack(h, b, count);
    }

    @Override
    public synchronized void allReduceSum(ByteBuffer buffer, int count) {
        hostOp(buffer, count, 0, false);
    }

    @Override
    public synchronized void allReduceSum(FloatBuffer buffer, int count) {
        hostOp(buffer, count, 0, false);
    }

    @Override
    public synchronized void broadcast(ByteBuffer buffer, int count, int root) {
        hostOp(buffer, count, root, true);
    }

    @Override
    public synchronized void broadcast(FloatBuffer buffer, int count, int root) {
        hostOp(buffer, count, root, true);
    }

    /** A one-element all-reduce on device memory. */
    @Override
    public synchronized void barrier() {
        allReduceSum(barrierScratch.pointer(), 1);
    }

    // ------------------------------------------------------------------ misc

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
        return options.generation();
    }

    @Override
    public String backend() {
        return "nccl";
    }

    public int device() {
        return device;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        cudaSetDevice(device);
        if (failure == null) {
            ncclCommDestroy(comm);
        }
        if (staging != null) {
            staging.close();
        }
        barrierScratch.close();
        cudaStreamDestroy(stream);
    }

    @Override
    public String toString() {
        return "NcclCollective{rank=" + rank + ", world=" + world + ", device=" + device + '}';
    }
}
