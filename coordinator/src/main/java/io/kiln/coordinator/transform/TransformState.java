package io.kiln.coordinator.transform;

import io.kiln.protocol.proto.TransformJobConfig;
import io.kiln.protocol.proto.TransformJobEvent;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;

/** A transform job folded from its events (mutated only by the entity's event handler). */
public final class TransformState {
  public enum Status { InProgress, Completed, Failed }

  /** One split: attempts started, failures, its counts once done. */
  public static final class Split {
    public int attempts;
    public int failures;
    public boolean done;
    public long rowsDone;
    public long rowsFailed;
    public String worker = "";
    public String lastError = "";
  }

  public final String name;
  public boolean exists;
  public Status status = Status.InProgress;
  public TransformJobConfig config = TransformJobConfig.getDefaultInstance();
  public String createdBy = "";
  public long createdMs;
  public long endedMs;
  public String reason = "";
  public long rowsDone;
  public long rowsFailed;
  public final List<String> outputs = new ArrayList<>();
  public final TreeMap<Integer, Split> splits = new TreeMap<>();
  public final List<String> history = new ArrayList<>();

  TransformState(String name) {
    this.name = name;
  }

  public boolean inProgress() {
    return exists && status == Status.InProgress;
  }

  public boolean allDone() {
    return !splits.isEmpty() && splits.values().stream().allMatch(s -> s.done);
  }

  TransformState apply(TransformJobEvent e) {
    long at = e.getTimestampMs();
    switch (e.getKindCase()) {
      case CREATED -> {
        exists = true;
        config = e.getCreated().getConfig();
        createdBy = e.getCreated().getCreatedBy();
        createdMs = at;
        for (int i = 0; i < config.getSplits(); i++) splits.put(i, new Split());
        history.add(at + " created: " + config.getSplits() + " splits of " + config.getInput());
      }
      case SPLIT_STARTED -> {
        Split s = splits.get(e.getSplitStarted().getSplit());
        s.attempts = Math.max(s.attempts, e.getSplitStarted().getAttempt());
        history.add(at + " split " + e.getSplitStarted().getSplit() + " attempt " + e.getSplitStarted().getAttempt() + " started");
      }
      case SPLIT_DONE -> {
        var d = e.getSplitDone();
        Split s = splits.get(d.getSplit());
        s.done = true;
        s.rowsDone = d.getRowsDone();
        s.rowsFailed = d.getRowsFailed();
        s.worker = d.getWorkerId();
        rowsDone = splits.values().stream().mapToLong(x -> x.rowsDone).sum();
        rowsFailed = splits.values().stream().mapToLong(x -> x.rowsFailed).sum();
        history.add(at + " split " + d.getSplit() + " done: " + d.getRowsDone() + " rows, " + d.getRowsFailed() + " failed"
            + (d.getWorkerId().isEmpty() ? "" : " (worker " + d.getWorkerId() + ")"));
      }
      case SPLIT_FAILED -> {
        var f = e.getSplitFailed();
        Split s = splits.get(f.getSplit());
        s.failures++;
        s.lastError = f.getReason();
        history.add(at + " split " + f.getSplit() + " attempt " + f.getAttempt() + " failed: " + f.getReason());
      }
      case COMPLETED -> {
        status = Status.Completed;
        endedMs = at;
        rowsDone = e.getCompleted().getRowsDone();
        rowsFailed = e.getCompleted().getRowsFailed();
        outputs.clear();
        outputs.addAll(e.getCompleted().getOutputsList());
        history.add(at + " completed");
      }
      case FAILED -> {
        status = Status.Failed;
        endedMs = at;
        reason = e.getFailed().getReason();
        history.add(at + " failed: " + reason);
      }
      default -> { }
    }
    return this;
  }
}
