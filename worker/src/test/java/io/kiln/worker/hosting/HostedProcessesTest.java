package io.kiln.worker.hosting;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpServer;
import io.kiln.protocol.proto.HostedProcessReport;
import io.kiln.protocol.proto.HostedProcessReport.Outcome;
import io.kiln.protocol.proto.HostedProcessSpec;
import io.kiln.worker.sandbox.SandboxSettings;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Real child JVMs (this test's classpath), started, watched and stopped as the worker does for the coordinator. */
class HostedProcessesTest {
  @TempDir Path logs;
  private HostedProcesses hosted;

  @BeforeEach
  void setUp() {
    hosted = new HostedProcesses(new HostingSettings("127.0.0.1", System.getProperty("java.class.path"),
        Path.of(System.getProperty("java.home"), "bin", "java").toString(), List.of("-Xmx64m", "-XX:TieredStopAtLevel=1"),
        logs, SandboxSettings.defaults().withCgroups("off")), "w-test");
  }

  @AfterEach
  void tearDown() {
    hosted.close();
  }

  @Test
  void aServerIsReadyOnceItListensAndAnswersPing() throws Exception {
    HostedProcessReport r = hosted.start(spec("endpoint/e/g1/a/1", FakeServer.class, false, "secret", "{worker-host}"))
        .get(60, TimeUnit.SECONDS);
    assertEquals(Outcome.READY, r.getOutcome(), r.toString());
    assertTrue(r.getUrl().startsWith("http://127.0.0.1:"), r.getUrl());
    assertEquals("w-test", r.getWorkerId());
    assertEquals(List.of("endpoint/e/g1/a/1"), hosted.running());
    // the same id again joins the running process instead of starting a second one
    assertEquals(r.getUrl(), hosted.start(spec("endpoint/e/g1/a/1", FakeServer.class, false, "secret", "127.0.0.1"))
        .get(5, TimeUnit.SECONDS).getUrl());
    ProcessHandle p = ProcessHandle.of(r.getPid()).orElseThrow();
    hosted.stop("endpoint/e/g1/a/1", "test");
    assertTrue(p.onExit().get(20, TimeUnit.SECONDS) != null);
    assertFalse(p.isAlive());
    long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
    while (!hosted.running().isEmpty() && System.nanoTime() < deadline) Thread.sleep(50);
    assertEquals(List.of(), hosted.running());
  }

  @Test
  void aServerThatExitsBeforeItIsReadyFailsWithItsOwnWords() throws Exception {
    HostedProcessReport r = hosted.start(spec("endpoint/e/g1/a/2", FakeServer.class, false, "secret", "corrupt"))
        .get(60, TimeUnit.SECONDS);
    assertEquals(Outcome.FAILED, r.getOutcome(), r.toString());
    assertTrue(r.getReason().contains("cannot start: centroids.f32 is corrupt"), r.getReason());
  }

  @Test
  void aSplitReportsItsExitAndOutput() throws Exception {
    HostedProcessReport ok = hosted.start(spec("transform/t/0/1", FakeSplit.class, true, null, "0")).get(60, TimeUnit.SECONDS);
    assertEquals(Outcome.EXITED, ok.getOutcome(), ok.toString());
    assertEquals(0, ok.getExitCode());
    assertTrue(ok.getOutputTail().strip().endsWith("{\"rows_done\":7,\"rows_failed\":1}"), ok.getOutputTail());
    HostedProcessReport bad = hosted.start(spec("transform/t/1/1", FakeSplit.class, true, null, "2")).get(60, TimeUnit.SECONDS);
    assertEquals(Outcome.EXITED, bad.getOutcome());
    assertEquals(2, bad.getExitCode());
  }

  @Test
  void aSplitPastItsTimeoutIsKilled() throws Exception {
    HostedProcessSpec s = spec("transform/t/2/1", FakeSplit.class, true, null, "sleep").toBuilder().setTimeoutMs(1500).build();
    HostedProcessReport r = hosted.start(s).get(60, TimeUnit.SECONDS);
    assertEquals(Outcome.FAILED, r.getOutcome(), r.toString());
    assertTrue(r.getReason().contains("did not finish within 1 s"), r.getReason());
  }

  @Test
  void aWorkerWithoutTheDeployClasspathSaysSo() throws Exception {
    HostedProcessReport r = HostedProcesses.none("w0").start(spec("x", FakeSplit.class, true, null, "0")).get(5, TimeUnit.SECONDS);
    assertEquals(Outcome.FAILED, r.getOutcome());
    assertTrue(r.getReason().contains("kiln.worker.hosting.classpath is not set"), r.getReason());
  }

  private static HostedProcessSpec spec(String id, Class<?> main, boolean waitForExit, String token, String arg) {
    HostedProcessSpec.Builder b = HostedProcessSpec.newBuilder().setId(id).setMainClass(main.getName()).addArgs(arg)
        .setWaitForExit(waitForExit).setTimeoutMs(60_000);
    if (token != null) b.putEnv("KILN_TOKEN", token);
    return b.build();
  }

  /** Like ServeMain: announces its address, answers /ping with the token from KILN_TOKEN. */
  public static final class FakeServer {
    public static void main(String[] args) throws Exception {
      if (args[0].equals("corrupt")) {
        System.out.println("loading...");
        System.out.println("kiln-serve: cannot start: centroids.f32 is corrupt");
        System.exit(3);
      }
      HttpServer s = HttpServer.create(new InetSocketAddress(args[0], 0), 0);
      String token = System.getenv("KILN_TOKEN");
      s.createContext("/ping", x -> {
        int code = ("Bearer " + token).equals(x.getRequestHeaders().getFirst("Authorization")) ? 200 : 401;
        byte[] b = "{}".getBytes(StandardCharsets.UTF_8);
        x.sendResponseHeaders(code, b.length);
        x.getResponseBody().write(b);
        x.close();
      });
      s.start();
      System.out.println("kiln-serve: listening on http://" + args[0] + ":" + s.getAddress().getPort());
      Thread.sleep(Long.MAX_VALUE);
    }
  }

  /** Like TransformMain: prints its counts last; exits with the code given, or never. */
  public static final class FakeSplit {
    public static void main(String[] args) throws Exception {
      if (args[0].equals("sleep")) Thread.sleep(Long.MAX_VALUE);
      System.out.println("{\"rows_done\":7,\"rows_failed\":1}");
      System.exit(Integer.parseInt(args[0]));
    }
  }
}
