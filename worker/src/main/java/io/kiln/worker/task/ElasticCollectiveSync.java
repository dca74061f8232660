package io.kiln.worker.task;

import ai.djl.ndarray.NDList;
import io.kiln.collective.Collective;
import io.kiln.collective.CollectiveException;
import io.kiln.collective.CollectiveOptions;
import io.kiln.collective.RingCollective;
import io.kiln.protocol.proto.GroupSpec;
import io.kiln.protocol.proto.TaskRendezvous;
import io.kiln.worker.training.ElasticSync;
import io.kiln.worker.training.GroupChangedException;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Gradient averaging over the TCP ring for an elastic job: one {@link CollectiveGradientSync} per
 * generation of the group. A collective failure (a peer died, closed or timed out) becomes a
 * {@link GroupChangedException} naming the peer; {@link #regroup} opens a fresh listener, meets the
 * coordinator again through the {@link GroupRendezvous} and opens the next generation's ring.
 */
public final class ElasticCollectiveSync implements ElasticSync {
  private static final Logger log = LoggerFactory.getLogger(ElasticCollectiveSync.class);

  private final String taskId;
  private final String host;
  private final GroupRendezvous rendezvous;
  private final CollectiveOptions options;
  private final int bucketBytes;
  private final Duration joinTimeout;
  private volatile GroupSpec group;
  private volatile View view;
  private volatile CollectiveGradientSync buckets;

  /** Opens the ring of {@code group} (already formed) on {@code listener}. */
  ElasticCollectiveSync(String taskId, String host, GroupRendezvous rendezvous, CollectiveOptions options,
      int bucketBytes, Duration joinTimeout, GroupSpec group, ServerSocketChannel listener) throws GroupChangedException {
    this.taskId = taskId;
    this.host = host;
    this.rendezvous = rendezvous;
    this.options = options;
    this.bucketBytes = bucketBytes;
    this.joinTimeout = joinTimeout;
    open(group, listener);
    // a member was lost while this rank may wait inside a collective on it (a frozen or cut-off
    // peer answers nothing until the collective's timeout): closing the collective fails it now
    rendezvous.onUrgentRegroup(generation -> {
      CollectiveGradientSync current = buckets;
      View v = view;
      if (current != null && v != null && v.generation() <= generation) {
        log.info("task {}: aborting generation {}'s collective: a member was lost", taskId, v.generation());
        current.collective().close();
      }
    });
  }

  @Override
  public View view() {
    return view;
  }

  @Override
  public boolean regroupRequested() {
    return rendezvous.regroupRequested(view.generation());
  }

  @Override
  public void sync(NDList gradients, long step) throws GroupChangedException {
    try {
      buckets.sync(gradients, step);
    } catch (CollectiveException e) {
      throw changed(e);
    }
  }

  @Override
  public void broadcastState(ByteBuffer buf, int bytes) throws GroupChangedException {
    ByteBuffer b = buf.duplicate().order(buf.order());
    b.position(0).limit(bytes);
    try {
      // broadcast moves raw bytes; its count is in floats
      buckets.collective().broadcast(b.slice().order(buf.order()), (bytes + 3) / 4, view.sourceRank());
    } catch (CollectiveException e) {
      throw changed(e);
    }
  }

  @Override
  public View regroup(StepState state, String reason, List<String> suspects) throws Exception {
    closeQuietly();
    ServerSocketChannel listener = RingCollective.listen(host + ":0", options);
    GroupSpec next;
    try {
      int port = ((InetSocketAddress) listener.getLocalAddress()).getPort();
      TaskRendezvous mine = TaskRendezvous.newBuilder().setRank(view.rank()).setTaskId(taskId)
          .setDataAddress(host + ":" + port).setBackend("ring").setFromGeneration(view.generation())
          .setCompletedStep(state.completedStep()).setEpoch(state.epoch()).setEpochOffset(state.epochOffset())
          .addAllSuspectTaskIds(suspects).setReason(reason == null ? "" : reason).build();
      log.info("task {} leaves generation {} at step {} ({}); suspects {}", taskId, view.generation(),
          state.completedStep(), reason, suspects);
      next = rendezvous.join(mine, joinTimeout);
    } catch (Exception e) {
      listener.close();
      throw e;
    }
    while (true) {
      try {
        open(next, listener);
        return view;
      } catch (GroupChangedException e) {
        // a member of the new generation failed while connecting: report again from it
        listener = RingCollective.listen(host + ":0", options);
        int port = ((InetSocketAddress) listener.getLocalAddress()).getPort();
        TaskRendezvous again = TaskRendezvous.newBuilder().setRank(view.rank()).setTaskId(taskId)
            .setDataAddress(host + ":" + port).setBackend("ring").setFromGeneration(view.generation())
            .setCompletedStep(state.completedStep()).setEpoch(state.epoch()).setEpochOffset(state.epochOffset())
            .addAllSuspectTaskIds(e.suspects()).setReason(e.getMessage()).build();
        try {
          next = rendezvous.join(again, joinTimeout);
        } catch (Exception ex) {
          listener.close();
          throw ex;
        }
      }
    }
  }

  private void open(GroupSpec g, ServerSocketChannel listener) throws GroupChangedException {
    int rank = g.getTaskIdsList().indexOf(taskId);
    if (rank < 0) {
      try {
        listener.close();
      } catch (IOException ignored) {
        // nothing listens any more either way
      }
      throw new IllegalStateException("this rank was left out of the job's group generation " + g.getGeneration()
          + " (it was too slow to regroup or was reported failed)");
    }
    this.group = g;
    this.view = new View(g.getGeneration(), rank, g.getTaskIdsCount(), g.getSourceRank());
    try {
      Collective c = RingCollective.open(rank, g.getDataAddressesList(), options.withGeneration(g.getGeneration()),
          listener);
      this.buckets = new CollectiveGradientSync(c, bucketBytes);
    } catch (CollectiveException e) {
      throw changed(e);
    }
  }

  private GroupChangedException changed(CollectiveException e) {
    List<String> suspects = new ArrayList<>();
    if (e.peerRank() >= 0 && e.peerRank() < group.getTaskIdsCount()) suspects.add(group.getTaskIds(e.peerRank()));
    closeQuietly();
    return new GroupChangedException("generation " + group.getGeneration() + " broke: " + e.getMessage(), suspects, e);
  }

  private void closeQuietly() {
    if (buckets == null) return;
    try {
      buckets.close();
    } catch (RuntimeException e) {
      log.debug("closing the collective of generation {}: {}", view.generation(), e.toString());
    }
    buckets = null;
  }

  @Override
  public void close() {
    closeQuietly();
  }
}
