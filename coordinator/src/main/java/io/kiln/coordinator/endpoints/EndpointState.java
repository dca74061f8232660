package io.kiln.coordinator.endpoints;

import io.kiln.protocol.proto.EndpointConfig;
import io.kiln.protocol.proto.EndpointEvent;
import io.kiln.protocol.proto.EndpointReplica;
import java.util.ArrayList;
import java.util.List;

/**
 * Everything the journal says about one endpoint: the fold of its {@link EndpointEvent}s.
 * {@code config}/{@code replicas} are what serves now; {@code pending} is a configuration whose
 * replicas are starting (creation, or the green side of a blue/green update).
 */
public record EndpointState(String name, boolean exists, Status status, EndpointConfig config, List<EndpointReplica> replicas,
                            long generation, EndpointConfig pending, String failureReason, String createdBy,
                            long createdAt, long updatedAt, List<String> history) {

  public enum Status { Creating, InService, Updating, Failed, Deleted }

  public static EndpointState empty(String name) {
    return new EndpointState(name, false, Status.Deleted, null, List.of(), 0, null, "", "", 0, 0, List.of());
  }

  /** Exists and not deleted. */
  public boolean live() {
    return exists && status != Status.Deleted;
  }

  public EndpointState apply(EndpointEvent e) {
    long at = e.getTimestampMs();
    switch (e.getKindCase()) {
      case CREATED:
        return new EndpointState(name, true, Status.Creating, null, List.of(), generation + 1, e.getCreated().getConfig(),
            "", e.getCreated().getCreatedBy(), at, at, log(List.of(), at, "created"));
      case UPDATE_STARTED: {
        var u = e.getUpdateStarted();
        Status s = replicas.isEmpty() ? Status.Creating : Status.Updating;
        return new EndpointState(name, true, s, config, replicas, u.getGeneration(), u.getConfig(), failureReason,
            createdBy, createdAt, at, log(history, at, "update to generation " + u.getGeneration() + " started by " + u.getUpdatedBy()));
      }
      case REPLICAS_READY: {
        var r = e.getReplicasReady();
        return new EndpointState(name, true, Status.InService, pending, List.copyOf(r.getReplicasList()), generation,
            null, "", createdBy, createdAt, at, log(history, at, "generation " + r.getGeneration() + " in service ("
            + r.getReplicasCount() + " replicas)"));
      }
      case FAILED: {
        String reason = e.getFailed().getReason();
        // A failed update leaves the old generation serving; a failed creation fails the endpoint.
        Status s = replicas.isEmpty() ? Status.Failed : Status.InService;
        return new EndpointState(name, true, s, config, replicas, generation, null, reason, createdBy, createdAt, at,
            log(history, at, "generation " + e.getFailed().getGeneration() + " failed: " + reason));
      }
      case REPLICA_ADDED: {
        List<EndpointReplica> rs = new ArrayList<>(replicas);
        rs.add(e.getReplicaAdded().getReplica());
        return withReplicas(rs, at, "replica added (" + e.getReplicaAdded().getReason() + ")");
      }
      case REPLICA_REMOVED: {
        List<EndpointReplica> rs = new ArrayList<>(replicas);
        rs.removeIf(r -> r.getUrl().equals(e.getReplicaRemoved().getUrl()));
        return withReplicas(rs, at, "replica removed (" + e.getReplicaRemoved().getReason() + ")");
      }
      case DELETED:
        return new EndpointState(name, true, Status.Deleted, config, List.of(), generation, null, "", createdBy,
            createdAt, at, log(history, at, "deleted by " + e.getDeleted().getDeletedBy()));
      default:
        throw new IllegalStateException("endpoint " + name + ": event without a kind in the journal");
    }
  }

  /** Replicas of {@code variant} serving now. */
  public long replicasOf(String variant) {
    return replicas.stream().filter(r -> r.getVariant().equals(variant)).count();
  }

  private EndpointState withReplicas(List<EndpointReplica> rs, long at, String what) {
    return new EndpointState(name, exists, status, config, List.copyOf(rs), generation, pending, failureReason,
        createdBy, createdAt, at, log(history, at, what));
  }

  private static List<String> log(List<String> h, long at, String what) {
    List<String> out = new ArrayList<>(h.size() >= 50 ? h.subList(h.size() - 49, h.size()) : h);
    out.add(java.time.Instant.ofEpochMilli(at) + " " + what);
    return List.copyOf(out);
  }
}
