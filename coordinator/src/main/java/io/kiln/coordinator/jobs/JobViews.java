package io.kiln.coordinator.jobs;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import io.kiln.coordinator.telemetry.JobTelemetry;
import io.kiln.protocol.proto.Progress;
import java.time.Instant;

/** Renders a job's state as the JSON documented in docs/api.md (JobView). */
public final class JobViews {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final JsonFormat.Printer SPEC_PRINTER = JsonFormat.printer().omittingInsignificantWhitespace();

  private JobViews() {}

  /** The full view; {@code live} is the latest progress from telemetry (may be null). */
  public static ObjectNode view(JobState s, Progress live, String queueReason, boolean withHistory) {
    ObjectNode n = JSON.createObjectNode();
    n.put("id", s.jobId());
    n.put("name", s.spec().getName());
    n.put("status", s.status().name());
    if (queueReason != null) n.put("statusReason", queueReason);
    n.set("spec", spec(s));
    n.put("submittedBy", s.submittedBy());
    time(n, "submittedAt", s.submittedAt());
    time(n, "startedAt", s.startedAt());
    time(n, "endedAt", s.endedAt());
    ArrayNode w = n.putArray("workers");
    s.workerIds().forEach(w::add);
    Progress p = live != null && (s.lastCheckpoint() == null || live.getTimestampMs() >= s.lastCheckpoint().getTimestampMs())
        ? live : s.lastCheckpoint();
    if (p != null) n.set("progress", read(JobTelemetry.progressJson(p)));
    ObjectNode m = n.putObject("metrics");
    s.metrics().entrySet().stream().sorted(java.util.Map.Entry.comparingByKey()).forEach(e -> m.put(e.getKey(), e.getValue()));
    n.put("modelUri", s.modelUri());
    if (s.spec().getAlgorithm().equals("processing") && !s.modelUri().isEmpty()) n.set("outputs", outputs(s));
    n.put("checkpointUri", s.checkpointUri());
    n.put("failureReason", s.failureReason());
    if (!s.stopReason().isEmpty()) n.put("stopReason", s.stopReason());
    if (withHistory) {
      ArrayNode h = n.putArray("history");
      for (JobState.HistoryEntry e : s.history()) {
        ObjectNode he = h.addObject();
        he.put("at", Instant.ofEpochMilli(e.at()).toString());
        he.put("event", e.event());
        he.put("detail", e.detail());
      }
    }
    return n;
  }

  /**
   * A completed processing job's outputs, name to URI: the destination in the spec, else
   * {@code <modelUri>/<name>/} (the worker reports the job's output folder as its model URI).
   */
  private static ObjectNode outputs(JobState s) {
    ObjectNode o = JSON.createObjectNode();
    String declared = s.spec().getHyperparametersOrDefault("kiln_processing_outputs", "").trim();
    if (declared.isEmpty()) return o;
    try {
      JsonNode d = JSON.readTree(declared);
      String base = s.modelUri().endsWith("/") ? s.modelUri() : s.modelUri() + "/";
      d.fields().forEachRemaining(e -> {
        String dest = e.getValue().asText("").trim();
        o.put(e.getKey(), dest.isEmpty() ? base + e.getKey() + "/" : dest);
      });
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      // validated at submission; nothing to show otherwise
    }
    return o;
  }

  /** The data of a status server-sent event. */
  public static String status(JobState s) {
    ObjectNode n = JSON.createObjectNode();
    n.put("status", s.status().name());
    ObjectNode m = n.putObject("metrics");
    s.metrics().forEach(m::put);
    n.put("modelUri", s.modelUri());
    n.put("failureReason", s.failureReason());
    return n.toString();
  }

  private static JsonNode spec(JobState s) {
    try {
      return JSON.readTree(SPEC_PRINTER.print(s.spec()));
    } catch (InvalidProtocolBufferException | com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException("cannot render the spec of job " + s.jobId(), e);
    }
  }

  private static JsonNode read(String json) {
    try {
      return JSON.readTree(json);
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  private static void time(ObjectNode n, String field, long ms) {
    if (ms > 0) n.put(field, Instant.ofEpochMilli(ms).toString()); else n.putNull(field);
  }
}
