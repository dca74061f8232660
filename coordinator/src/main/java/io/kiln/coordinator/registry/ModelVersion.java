package io.kiln.coordinator.registry;

import io.kiln.protocol.proto.ModelPackage;
import java.util.ArrayList;
import java.util.List;

/** One registered version of a model package group: what it holds and its approval history. */
public record ModelVersion(
    String group,
    int version,
    ModelPackage pkg,
    String registeredBy,
    long registeredAt,
    ApprovalStatus status,
    /** Every status the version has had, oldest first; the first is its registration. */
    List<ApprovalChange> history) {

  /** A change of approval: to what, by whom, when and why. */
  public record ApprovalChange(long at, ApprovalStatus status, String by, String reason) {}

  ModelVersion withStatus(long at, ApprovalStatus s, String by, String reason) {
    List<ApprovalChange> h = new ArrayList<>(history);
    h.add(new ApprovalChange(at, s, by, reason));
    return new ModelVersion(group, version, pkg, registeredBy, registeredAt, s, List.copyOf(h));
  }

  /** The time of the latest approval change (registration if none). */
  public long statusChangedAt() {
    return history.isEmpty() ? registeredAt : history.get(history.size() - 1).at();
  }
}
