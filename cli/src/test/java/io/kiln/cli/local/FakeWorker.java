package io.kiln.cli.local;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;

/** A stand-in worker process: registers itself in {@code <data-dir>/fake-workers/<id>} and waits. */
public final class FakeWorker {
    public static void main(String[] args) throws Exception {
        String id = System.getProperty("kiln.worker.id");
        Path dir = Paths.get(System.getProperty("kiln.data-dir")).resolve("fake-workers");
        Files.createDirectories(dir);
        Path me = dir.resolve(id);
        Files.writeString(me, String.valueOf(ProcessHandle.current().pid()));
        Runtime.getRuntime().addShutdownHook(new Thread(() -> me.toFile().delete()));
        System.out.println(id + " up, seed " + System.getProperty("kiln.cluster.seed") + ", DJL_CACHE_DIR "
                + System.getProperty("DJL_CACHE_DIR") + ", env " + System.getenv("DJL_CACHE_DIR"));
        Thread.sleep(Long.MAX_VALUE);
    }
}
