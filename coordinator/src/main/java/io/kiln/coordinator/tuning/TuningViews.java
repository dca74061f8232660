package io.kiln.coordinator.tuning;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.util.JsonFormat;
import io.kiln.coordinator.api.ApiJson;
import java.time.Instant;
import java.util.List;

import java.util.TreeMap;

/** Renders a tuning job as the JSON documented in docs/api.md (TuningJobView). */
public final class TuningViews {
  private static final JsonFormat.Printer SPEC_PRINTER = JsonFormat.printer().omittingInsignificantWhitespace();

  private TuningViews() {}

  /** The view; with {@code full}, the spec and the whole leaderboard (else only the best trial). */
  public static ObjectNode view(TuningState s, boolean full) {
    ObjectNode n = ApiJson.obj();
    n.put("id", s.tuningJobId());
    n.put("name", s.spec().getName());
    n.put("status", s.status().name());
    n.put("strategy", s.spec().getStrategy());
    n.putObject("objective").put("metric", s.spec().getObjective().getMetric()).put("type", s.spec().getObjective().getType());
    n.put("maxTrials", s.spec().getMaxTrials());
    n.put("maxParallelTrials", s.spec().getMaxParallelTrials());
    n.put("seed", s.spec().getSeed());
    n.put("submittedBy", s.submittedBy());
    time(n, "submittedAt", s.submittedAt());
    time(n, "endedAt", s.endedAt());
    n.put("endReason", s.endReason());
    if (!s.stopReason().isEmpty()) n.put("stopReason", s.stopReason());
    ObjectNode counts = n.putObject("trialCounts");
    counts.put("total", s.trials().size());
    for (TrialState.Status st : TrialState.Status.values()) {
      counts.put(Character.toLowerCase(st.name().charAt(0)) + st.name().substring(1),
          s.trials().values().stream().filter(t -> t.status() == st).count());
    }
    n.put("warmStartTrials", s.warmStart().size());
    List<TrialState> board = s.leaderboard();
    if (!board.isEmpty() && board.get(0).hasObjective()) n.set("bestTrial", trial(board.get(0), 1));
    else n.putNull("bestTrial");
    if (full) {
      n.set("spec", spec(s));
      ArrayNode lb = n.putArray("leaderboard");
      int rank = 1;
      for (TrialState t : board) lb.add(trial(t, t.hasObjective() ? rank++ : 0));
    }
    return n;
  }

  static ObjectNode trial(TrialState t, int rank) {
    ObjectNode o = ApiJson.obj();
    if (rank > 0) o.put("rank", rank); else o.putNull("rank");
    o.put("trialId", t.trialId());
    o.put("jobId", t.jobId());
    o.put("status", t.status().name());
    if (t.hasObjective()) o.put("objective", t.objective()); else o.putNull("objective");
    ObjectNode hp = o.putObject("hyperparameters");
    new TreeMap<>(t.hyperparameters()).forEach(hp::put);
    o.put("rung", t.rung());
    o.put("parentTrialId", t.parentTrialId());
    o.put("attempts", t.attempts());
    o.put("reason", t.reason());
    ObjectNode m = o.putObject("metrics");
    new TreeMap<>(t.metrics()).forEach((k, v) -> m.put(k, v));
    ArrayNode c = o.putArray("curve");
    t.curve().forEach(c::add);
    return o;
  }

  private static JsonNode spec(TuningState s) {
    try {
      return ApiJson.MAPPER.readTree(SPEC_PRINTER.print(s.spec()));
    } catch (InvalidProtocolBufferException | com.fasterxml.jackson.core.JsonProcessingException e) {
      throw new IllegalStateException("cannot render the spec of tuning job " + s.tuningJobId(), e);
    }
  }

  private static void time(ObjectNode n, String field, long ms) {
    if (ms > 0) n.put(field, Instant.ofEpochMilli(ms).toString()); else n.putNull(field);
  }

}
