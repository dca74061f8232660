package io.kiln.deploy.server;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kiln.artifacts.ArtifactStore;
import io.kiln.worker.training.ModelArtifacts;
import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.Base64;
import java.util.UUID;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Samples requests and responses into JSON lines in the monitor's format (PLATFORM.md "Data
 * capture"). Lines are buffered and written by {@link #flush} as one new object per flush under
 * {@code <uri>/yyyy/MM/dd/HH/} (stores have no append: each flush is its own file, as SageMaker does).
 */
public final class DataCapture {
  private static final Logger LOG = LoggerFactory.getLogger(DataCapture.class);
  private static final DateTimeFormatter HOUR = DateTimeFormatter.ofPattern("yyyy/MM/dd/HH").withZone(ZoneOffset.UTC);
  private final URI uri;
  private final ArtifactStore store;
  private final double percent;
  private final ConcurrentLinkedQueue<String> lines = new ConcurrentLinkedQueue<>();
  private final AtomicLong seq = new AtomicLong();

  public DataCapture(URI uri, double percent) {
    if (percent < 0 || percent > 100) throw new IllegalArgumentException("capture percentage must be 0..100: " + percent);
    this.uri = ModelArtifacts.folder(uri);
    this.store = ArtifactStore.forRoot(this.uri);
    this.percent = percent;
  }

  /** True for the sampled share of requests. */
  boolean sample() {
    return percent > 0 && ThreadLocalRandom.current().nextDouble() * 100 < percent;
  }

  void record(String model, String inType, byte[] in, String outType, byte[] out) {
    ObjectNode o = Payloads.JSON.createObjectNode();
    ObjectNode cd = o.putObject("captureData");
    part(cd.putObject("endpointInput"), "INPUT", inType, in);
    part(cd.putObject("endpointOutput"), "OUTPUT", outType, out);
    ObjectNode md = o.putObject("eventMetadata");
    md.put("eventId", UUID.randomUUID().toString());
    md.put("inferenceTime", Instant.now().toString());
    if (model != null) md.put("targetModel", model);
    lines.add(o.toString());
  }

  private static void part(ObjectNode p, String mode, String type, byte[] data) {
    p.put("observedContentType", type);
    p.put("mode", mode);
    boolean text = type.startsWith("application/json") || type.startsWith("text/csv");
    p.put("data", text ? new String(data, StandardCharsets.UTF_8) : Base64.getEncoder().encodeToString(data));
    p.put("encoding", !text ? "BASE64" : type.startsWith("text/csv") ? "CSV" : "JSON");
  }

  /** Writes buffered lines as one object; returns how many. */
  public synchronized int flush() {
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    int n = 0;
    String l;
    while ((l = lines.poll()) != null) {
      b.writeBytes(l.getBytes(StandardCharsets.UTF_8));
      b.write('\n');
      n++;
    }
    if (n == 0) return 0;
    Instant now = Instant.now();
    URI file = uri.resolve(HOUR.format(now) + "/" + now.toEpochMilli() + "-" + seq.incrementAndGet() + ".jsonl");
    try {
      store.put(file, b.toByteArray());
    } catch (Exception e) {
      LOG.warn("data capture: cannot write {} ({} records lost): {}", file, n, e.toString());
    }
    return n;
  }

  public URI uri() {
    return uri;
  }
}
