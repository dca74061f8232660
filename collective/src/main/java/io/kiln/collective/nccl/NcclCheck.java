package io.kiln.collective.nccl;

import static org.bytedeco.cuda.global.cudart.cudaDeviceSynchronize;
import static org.bytedeco.cuda.global.cudart.cudaGetDeviceProperties;
import static org.bytedeco.cuda.global.cudart.cudaSetDevice;
import static org.bytedeco.cuda.global.nccl.ncclCommDestroy;
import static org.bytedeco.cuda.global.nccl.ncclCommInitAll;
import static org.bytedeco.cuda.global.nccl.ncclSuccess;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.bytedeco.cuda.cudart.cudaDeviceProp;
import org.bytedeco.cuda.nccl.ncclComm;

import io.kiln.collective.CollectiveException;
import io.kiln.collective.CollectiveFactory;
import io.kiln.collective.CollectiveOptions;

/**
 * GPU smoke test and micro-benchmark of {@link NcclCollective}: load, unique id round trip,
 * a world-size-1 communicator (all-reduce / broadcast / barrier on device memory with result
 * checks and timings), ncclCommInitAll over the device, and an attempt at two ranks on one GPU.
 * Exit code 0: all passed; 2: NCCL not usable here (no GPU / libraries); 1: a check failed.
 */
public final class NcclCheck {

    private static int failures;

    private NcclCheck() {
    }

    public static void main(String[] args) throws Exception {
        Locale.setDefault(Locale.ROOT);
        int device = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        System.out.println("java " + System.getProperty("java.version") + " (" + System.getProperty("java.home") + ")");
        NcclCollective.Availability a = NcclCollective.probe();
        System.out.println("probe: available=" + a.available() + " " + a.detail());
        try {
            CollectiveFactory.Resolution r = CollectiveFactory.resolve("auto");
            System.out.println("factory auto -> " + r.backend() + " (" + r.reason() + ")");
        } catch (RuntimeException e) {
            System.out.println("factory auto threw " + e);
        }
        if (!a.available()) {
            System.out.println("RESULT nccl-unavailable: " + a.detail());
            System.exit(2);
        }

        cudaDeviceProp p = new cudaDeviceProp();
        cudaSetDevice(device);
        Cuda.check(cudaGetDeviceProperties(p, device), "cudaGetDeviceProperties");
        System.out.printf("device %d: %s, %.1f GiB, compute capability %d.%d, %d SMs%n", device, p.name().getString(),
                p.totalGlobalMem() / (double) (1L << 30), p.major(), p.minor(), p.multiProcessorCount());

        // unique id: create, serialise, deserialise
        byte[] id = NcclCollective.createUniqueId();
        byte[] again = NcclCollective.toBytes(NcclCollective.fromBytes(id));
        check("unique id round trip (" + id.length + " bytes, " + hex(id, 12) + "...)", Arrays.equals(id, again));

        CollectiveOptions opts = CollectiveOptions.defaults().withTimeout(Duration.ofSeconds(20))
                .withConnectTimeout(Duration.ofSeconds(20));
        try (NcclCollective c = NcclCollective.open(0, 1, id, device, opts)) {
            System.out.println("ncclCommInitRank world=1: " + c);
            int n = (1 << 20) + 3;
            ByteBuffer host = ByteBuffer.allocateDirect(n * 4).order(ByteOrder.nativeOrder());
            for (int i = 0; i < n; i++) {
                host.putFloat(i * 4, i % 13);
            }
            try (DeviceBuffer d = DeviceBuffer.allocate(device, n * 4L)) {
                d.copyFromHost(host, n * 4L);
                c.allReduceSum(d.pointer(), n);
                c.broadcast(d.pointer(), n, 0);
                c.barrier();
                ByteBuffer back = ByteBuffer.allocateDirect(n * 4).order(ByteOrder.nativeOrder());
                d.copyToHost(back, n * 4L);
                boolean ok = true;
                for (int i = 0; i < n && ok; i++) {
                    ok = back.getFloat(i * 4) == i % 13;
                }
                check("device all-reduce + broadcast + barrier, world 1, " + n + " floats", ok);
            }
            c.allReduceSum(host.asFloatBuffer(), n);
            check("host-buffer all-reduce convenience (H2D, reduce, D2H)", host.getFloat(4 * 14) == 1f);

            System.out.println("timing, world 1, one call = enqueue + wait for the stream. In place a 1-rank all-reduce"
                    + " moves no data (call overhead); out of place it is a device copy; host = the host-buffer"
                    + " convenience (H2D copy, all-reduce, D2H copy, pageable memory):");
            System.out.println("bytes,inplace_us,outofplace_us,outofplace_GBps,host_us,host_GBps");
            for (long bytes : new long[] {4 << 10, 64 << 10, 1 << 20, 16 << 20, 64 << 20, 256L << 20}) {
                time(c, device, bytes);
            }
        } catch (RuntimeException e) {
            fail("world-1 communicator", e);
        }

        // ncclCommInitAll over the single device
        try {
            ncclComm comm = new ncclComm();
            int rc = ncclCommInitAll(comm, 1, new int[] {device});
            check("ncclCommInitAll(1 device) rc=" + rc + (rc == ncclSuccess ? "" : " " + Cuda.ncclError(rc)),
                    rc == ncclSuccess);
            if (rc == ncclSuccess) {
                ncclCommDestroy(comm);
            }
        } catch (RuntimeException e) {
            fail("ncclCommInitAll", e);
        }

        twoRanksOneGpu(device, opts);

        System.out.println(failures == 0 ? "RESULT ok" : "RESULT failed checks: " + failures);
        System.exit(failures == 0 ? 0 : 1);
    }

    /** NCCL normally refuses two ranks of one communicator on the same GPU; report what happens. */
    private static void twoRanksOneGpu(int device, CollectiveOptions opts) throws Exception {
        byte[] id = NcclCollective.createUniqueId();
        ExecutorService ex = Executors.newFixedThreadPool(2, r -> {
            Thread t = new Thread(r);
            t.setDaemon(true);
            return t;
        });
        List<Future<String>> fs = new ArrayList<>();
        for (int r = 0; r < 2; r++) {
            int rank = r;
            fs.add(ex.submit(() -> {
                try (NcclCollective c = NcclCollective.open(rank, 2, id, device,
                        opts.withConnectTimeout(Duration.ofSeconds(15)))) {
                    int n = 1 << 20;
                    ByteBuffer h = ByteBuffer.allocateDirect(n * 4).order(ByteOrder.nativeOrder());
                    for (int i = 0; i < n; i++) {
                        h.putFloat(i * 4, rank + 1);
                    }
                    c.allReduceSum(h, n);
                    return "ok, sum=" + h.getFloat(0) + " (expected 3.0)";
                } catch (CollectiveException e) {
                    return "refused: " + e.getMessage();
                }
            }));
        }
        for (int r = 0; r < 2; r++) {
            String s;
            try {
                s = fs.get(r).get(40, TimeUnit.SECONDS);
            } catch (java.util.concurrent.TimeoutException e) {
                s = "no answer within 40 s";
            }
            System.out.println("two ranks on one GPU, rank " + r + ": " + s);
        }
        ex.shutdownNow();
    }

    private static void time(NcclCollective c, int device, long bytes) {
        long n = bytes / 4;
        try (DeviceBuffer d = DeviceBuffer.allocate(device, bytes); DeviceBuffer e = DeviceBuffer.allocate(device, bytes)) {
            int iters = (int) Math.max(10, Math.min(500, (1L << 30) / bytes));
            double inPlace = timeIt(iters, () -> c.allReduceSum(d.pointer(), n));
            double outOfPlace = timeIt(iters, () -> c.allReduceSum(d.pointer(), e.pointer(), n));
            double host = -1;
            if (bytes <= (64 << 20)) {
                ByteBuffer h = ByteBuffer.allocateDirect((int) bytes).order(ByteOrder.nativeOrder());
                host = timeIt(Math.max(5, iters / 10), () -> c.allReduceSum(h, (int) n));
            }
            System.out.printf("%d,%.1f,%.1f,%.1f,%s,%s%n", bytes, inPlace, outOfPlace, bytes / (outOfPlace * 1e-6) / 1e9,
                    host < 0 ? "-" : String.format("%.1f", host),
                    host < 0 ? "-" : String.format("%.2f", bytes / (host * 1e-6) / 1e9));
        }
    }

    private static double timeIt(int iters, Runnable op) {
        for (int i = 0; i < 5; i++) {
            op.run();
        }
        cudaDeviceSynchronize();
        long t0 = System.nanoTime();
        for (int i = 0; i < iters; i++) {
            op.run();
        }
        return (System.nanoTime() - t0) / 1e3 / iters;
    }

    private static void check(String what, boolean ok) {
        System.out.println((ok ? "PASS " : "FAIL ") + what);
        if (!ok) {
            failures++;
        }
    }

    private static void fail(String what, Throwable t) {
        System.out.println("FAIL " + what + ": " + t);
        t.printStackTrace(System.out);
        failures++;
    }

    private static String hex(byte[] b, int n) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < Math.min(n, b.length); i++) {
            sb.append(String.format("%02x", b[i] & 0xff));
        }
        return sb.toString();
    }
}
