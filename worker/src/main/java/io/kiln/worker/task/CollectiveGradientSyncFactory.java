package io.kiln.worker.task;

import com.google.protobuf.ByteString;
import io.kiln.collective.Collective;
import io.kiln.collective.CollectiveFactory;
import io.kiln.collective.CollectiveOptions;
import io.kiln.collective.RingCollective;
import io.kiln.protocol.proto.GroupSpec;
import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskRendezvous;
import io.kiln.worker.training.GradientSync;
import java.net.InetSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.time.Duration;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Data-parallel gradient synchronisation over Kiln's collectives. For a task of world size > 1:
 * choose the backend this rank can use (NCCL only on a GPU worker that can load it, else the TCP
 * ring, or what the spec forces), listen on the data plane, meet the other ranks through the
 * coordinator, open the collective and hand it to a {@link CollectiveGradientSync}.
 */
public final class CollectiveGradientSyncFactory implements GradientSyncFactory {
  private static final Logger log = LoggerFactory.getLogger(CollectiveGradientSyncFactory.class);

  private final String host;
  private final int gpus;
  private final CollectiveOptions options;
  private final Duration rendezvousTimeout;
  private final Duration regroupTimeout;

  /**
   * @param host the address peers reach this worker's data plane on
   * @param gpus GPUs this worker has (NCCL is considered only when > 0)
   */
  public CollectiveGradientSyncFactory(String host, int gpus, CollectiveOptions options, Duration rendezvousTimeout) {
    this(host, gpus, options, rendezvousTimeout, Duration.ofMinutes(10));
  }

  public CollectiveGradientSyncFactory(String host, int gpus, CollectiveOptions options, Duration rendezvousTimeout,
      Duration regroupTimeout) {
    this.regroupTimeout = regroupTimeout;
    this.host = host;
    this.gpus = gpus;
    this.options = options;
    this.rendezvousTimeout = rendezvousTimeout;
  }

  @Override
  public GradientSync create(TaskAssignment a, GroupRendezvous rendezvous) throws Exception {
    int world = Math.max(1, a.getWorldSize());
    // an elastic job started on one worker still forms a group: others may join it later
    if (world == 1 && a.getSpec().getResources().getMaxWorkers() <= 1) return GradientSync.NONE;
    int rank = a.getRank();
    String wanted = a.getSpec().getResources().getCollective().isEmpty() ? "auto" : a.getSpec().getResources().getCollective();
    String backend = chooseBackend(wanted);
    int bucketBytes = bucketBytes(a);

    ServerSocketChannel listener = RingCollective.listen(host + ":0", options);
    Collective collective = null;
    try {
      int port = ((InetSocketAddress) listener.getLocalAddress()).getPort();
      TaskRendezvous.Builder mine = TaskRendezvous.newBuilder().setRank(rank).setDataAddress(host + ":" + port)
          .setBackend(backend).setTaskId(a.getTaskId()).setCompletedStep(-1);
      if (rank == 0 && backend.equals("nccl")) {
        byte[] id = CollectiveFactory.ncclUniqueIdOrNull();
        if (id == null) mine.setBackend("ring"); else mine.setNcclUniqueId(ByteString.copyFrom(id));
      }
      GroupSpec group = rendezvous.join(mine.build(), rendezvousTimeout);
      CollectiveOptions opts = options.withGeneration(group.getGeneration());
      if (group.getBackend().equals("nccl")) {
        listener.close();
        collective = CollectiveFactory.create("nccl", new CollectiveFactory.Spec(rank, group.getDataAddressesList(),
            group.getNcclUniqueId().toByteArray(), 0, opts));
      } else if (group.getTaskIdsCount() > 0) {
        // the ring regroups when members change (elastic training); NCCL jobs do not (yet)
        ElasticCollectiveSync elastic = new ElasticCollectiveSync(a.getTaskId(), host, rendezvous, options, bucketBytes,
            regroupTimeout, group, listener);
        log.info("task {} rank {}/{}: elastic ring collective up (generation {})", a.getTaskId(),
            elastic.view().rank(), elastic.view().worldSize(), group.getGeneration());
        return elastic;
      } else {
        collective = RingCollective.open(rank, group.getDataAddressesList(), opts, listener);
      }
      log.info("task {} rank {}/{}: {} collective up (generation {})", a.getTaskId(), rank, world,
          collective.backend(), group.getGeneration());
      return new CollectiveGradientSync(collective, bucketBytes);
    } catch (Exception | Error e) {
      if (collective != null) collective.close();
      listener.close();
      throw e;
    }
  }

  private String chooseBackend(String wanted) {
    if (wanted.equals("ring")) return "ring";
    if (wanted.equals("nccl")) return CollectiveFactory.resolve("nccl").backend(); // throws with the reason
    if (gpus <= 0) return "ring"; // CPU worker: gradients live in host memory
    CollectiveFactory.Resolution r = CollectiveFactory.resolve("auto");
    if (!r.backend().equals("nccl")) log.info("collective auto: {}; using the TCP ring", r.reason());
    return r.backend();
  }

  /** Hyperparameter {@code gradient_bucket_mb} (default {@link CollectiveGradientSync#DEFAULT_BUCKET_BYTES}). */
  static int bucketBytes(TaskAssignment a) {
    String mb = a.getSpec().getHyperparametersMap().get("gradient_bucket_mb");
    if (mb == null || mb.isBlank()) return CollectiveGradientSync.DEFAULT_BUCKET_BYTES;
    double v = Double.parseDouble(mb.trim());
    if (!(v > 0) || v > 1024) throw new IllegalArgumentException("gradient_bucket_mb must be in (0, 1024], not " + mb);
    return (int) Math.max(4096, v * 1024 * 1024);
  }
}
