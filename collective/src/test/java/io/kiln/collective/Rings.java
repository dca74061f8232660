package io.kiln.collective;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;

/** Test helpers: rings of threads in one JVM on 127.0.0.1 with OS-chosen ports. */
final class Rings {
    private Rings() {
    }

    static ServerSocketChannel[] listeners(int n) throws Exception {
        ServerSocketChannel[] ls = new ServerSocketChannel[n];
        for (int i = 0; i < n; i++) {
            ls[i] = ServerSocketChannel.open();
            ls[i].bind(new InetSocketAddress("127.0.0.1", 0));
        }
        return ls;
    }

    static List<String> addresses(ServerSocketChannel[] ls) throws Exception {
        List<String> a = new ArrayList<>();
        for (ServerSocketChannel l : ls) {
            a.add("127.0.0.1:" + ((InetSocketAddress) l.getLocalAddress()).getPort());
        }
        return a;
    }

    static List<RingCollective> open(int n, CollectiveOptions options) throws Exception {
        ServerSocketChannel[] ls = listeners(n);
        List<String> addrs = addresses(ls);
        List<RingCollective> out = parallel(n, r -> () -> RingCollective.open(r, addrs, options, ls[r]));
        return out;
    }

    static <T> List<T> parallel(int n, IntFunction<Callable<T>> body) throws Exception {
        ExecutorService ex = Executors.newFixedThreadPool(n);
        try {
            List<Future<T>> fs = new ArrayList<>();
            for (int r = 0; r < n; r++) {
                fs.add(ex.submit(body.apply(r)));
            }
            List<T> out = new ArrayList<>();
            for (Future<T> f : fs) {
                out.add(f.get(60, TimeUnit.SECONDS));
            }
            return out;
        } finally {
            ex.shutdownNow();
        }
    }

    static void closeAll(List<? extends Collective> cs) {
        for (Collective c : cs) {
            c.close();
        }
    }

    static ByteBuffer direct(int floats) {
        return ByteBuffer.allocateDirect(floats * 4).order(ByteOrder.nativeOrder());
    }
}
