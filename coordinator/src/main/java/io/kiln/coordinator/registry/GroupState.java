package io.kiln.coordinator.registry;

import io.kiln.protocol.proto.RegistryEvent;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;

/**
 * Everything the journal says about one model package group: the fold of its
 * {@link RegistryEvent}s. Immutable; {@link #apply} returns the next state.
 */
public record GroupState(String name, boolean exists, String description, String createdBy, long createdAt,
                         List<ModelVersion> versions) {

  public static GroupState empty(String name) {
    return new GroupState(name, false, "", "", 0, List.of());
  }

  public GroupState apply(RegistryEvent e) {
    long at = e.getTimestampMs();
    switch (e.getKindCase()) {
      case GROUP_CREATED:
        return new GroupState(name, true, e.getGroupCreated().getDescription(), e.getGroupCreated().getCreatedBy(), at,
            versions);
      case VERSION_REGISTERED: {
        var r = e.getVersionRegistered();
        ApprovalStatus s = ApprovalStatus.of(r.getStatus());
        ModelVersion v = new ModelVersion(name, r.getVersion(), r.getPackage(), r.getRegisteredBy(), at, s,
            List.of(new ModelVersion.ApprovalChange(at, s, r.getRegisteredBy(), r.getReason())));
        List<ModelVersion> vs = new ArrayList<>(versions);
        vs.add(v);
        return with(vs);
      }
      case APPROVAL_CHANGED: {
        var c = e.getApprovalChanged();
        List<ModelVersion> vs = new ArrayList<>(versions);
        int i = c.getVersion() - 1;
        vs.set(i, vs.get(i).withStatus(at, ApprovalStatus.of(c.getStatus()), c.getChangedBy(), c.getReason()));
        return with(vs);
      }
      default:
        throw new IllegalStateException("model package group " + name + ": event without a kind in the journal");
    }
  }

  /** The version numbered {@code n} (numbers start at 1 and have no gaps). */
  public Optional<ModelVersion> version(int n) {
    return n >= 1 && n <= versions.size() ? Optional.of(versions.get(n - 1)) : Optional.empty();
  }

  /** The highest-numbered Approved version: what "deploy the latest approved" serves. */
  public Optional<ModelVersion> latestApproved() {
    return versions.stream().filter(v -> v.status() == ApprovalStatus.Approved)
        .max(Comparator.comparingInt(ModelVersion::version));
  }

  public int nextVersion() {
    return versions.size() + 1;
  }

  private GroupState with(List<ModelVersion> vs) {
    return new GroupState(name, exists, description, createdBy, createdAt, List.copyOf(vs));
  }
}
