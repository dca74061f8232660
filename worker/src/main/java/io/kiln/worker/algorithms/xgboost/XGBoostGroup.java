package io.kiln.worker.algorithms.xgboost;

import com.google.gson.Gson;
import com.google.gson.reflect.TypeToken;
import io.kiln.protocol.proto.GroupSpec;
import io.kiln.protocol.proto.TaskRendezvous;
import io.kiln.worker.task.GroupRendezvous;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import ml.dmlc.xgboost4j.java.Communicator;
import ml.dmlc.xgboost4j.java.RabitTracker;
import ml.dmlc.xgboost4j.java.XGBoostError;

/**
 * The ranks of a distributed {@code xgboost} task joined into one XGBoost communicator. Rank 0
 * starts XGBoost's {@link RabitTracker} for {@code world} workers and puts the tracker's worker
 * arguments (JSON) into its {@link TaskRendezvous#getDataAddress() data_address}; every rank meets
 * the others through Kiln's rendezvous (the coordinator), reads rank 0's entry of
 * {@link GroupSpec#getDataAddressesList()}, and calls {@link Communicator#init} with those
 * arguments plus {@code dmlc_task_id} = its rank. XGBoost then all-reduces histograms and metrics
 * between the ranks itself (its own TCP connections). The communicator is per thread: everything
 * from {@link #join} to {@link #close} must run on the task's thread.
 */
final class XGBoostGroup implements AutoCloseable {
  static final String BACKEND = "xgboost";
  private static final Gson GSON = new Gson();

  private final RabitTracker tracker;
  private final Duration timeout;
  private boolean open;

  private XGBoostGroup(RabitTracker tracker, Duration timeout) {
    this.tracker = tracker;
    this.timeout = timeout;
  }

  /**
   * Joins the group: blocks until every rank has reached the rendezvous and the communicator is up.
   *
   * @param host the address other ranks reach this worker on (rank 0's tracker listens there)
   * @param timeout rendezvous timeout; also XGBoost's per-operation timeout (a rank that stops
   *     answering fails the others after it)
   */
  static XGBoostGroup join(GroupRendezvous rendezvous, int rank, int world, String host, Duration timeout)
      throws Exception {
    RabitTracker tracker = null;
    XGBoostGroup group = null;
    try {
      TaskRendezvous.Builder mine = TaskRendezvous.newBuilder().setRank(rank).setBackend(BACKEND);
      if (rank == 0) {
        int seconds = (int) Math.max(1, Math.min(Integer.MAX_VALUE, timeout.toSeconds()));
        tracker = new RabitTracker(world, host, 0, seconds);
        if (!tracker.start()) throw new IllegalStateException("XGBoost's tracker did not start on " + host);
        mine.setDataAddress(GSON.toJson(tracker.getWorkerArgs()));
      } else {
        mine.setDataAddress(host);
      }
      GroupSpec spec = rendezvous.join(mine.build(), timeout);
      if (spec.getDataAddressesCount() != world) {
        throw new IllegalStateException("the group has " + spec.getDataAddressesCount() + " ranks, this task expects "
            + world);
      }
      Map<String, Object> args = workerArgs(spec.getDataAddresses(0), rank, timeout);
      group = new XGBoostGroup(tracker, timeout);
      Communicator.init(args);
      group.open = true;
      return group;
    } catch (Exception | Error e) {
      if (group == null && tracker != null) stopQuietly(tracker);
      else if (group != null) group.close();
      throw e;
    }
  }

  /** The communicator arguments for {@code rank} from rank 0's JSON (integral numbers as integers, as XGBoost wants). */
  static Map<String, Object> workerArgs(String trackerJson, int rank, Duration timeout) {
    Map<String, Object> raw;
    try {
      raw = GSON.fromJson(trackerJson, new TypeToken<LinkedHashMap<String, Object>>() {}.getType());
    } catch (RuntimeException e) {
      raw = null;
    }
    if (raw == null || !raw.containsKey("dmlc_tracker_uri")) {
      throw new IllegalStateException("rank 0 did not announce XGBoost tracker arguments (data_address '"
          + trackerJson + "'): is every rank of the job running the xgboost algorithm?");
    }
    Map<String, Object> args = new LinkedHashMap<>();
    raw.forEach((k, v) -> {
      if (v instanceof Double && (Double) v == Math.rint((Double) v)) args.put(k, ((Double) v).longValue());
      else args.put(k, v);
    });
    args.put("dmlc_task_id", Integer.toString(rank));
    args.put("dmlc_timeout", Math.max(1, timeout.toSeconds()));
    return args;
  }

  /** Element-wise maximum over the ranks (a collective: every rank must call it at the same point). */
  static float[] max(float[] values) {
    return Communicator.allReduce(values, Communicator.OpType.MAX);
  }

  /** Element-wise sum over the ranks (a collective). */
  static float[] sum(float[] values) {
    return Communicator.allReduce(values, Communicator.OpType.SUM);
  }

  @Override
  public void close() {
    if (open) {
      open = false;
      try {
        Communicator.shutdown();
      } catch (XGBoostError | RuntimeException e) {
        // the training result (or failure) matters more than a failed goodbye
      }
    }
    if (tracker != null) {
      try {
        tracker.waitFor(Math.min(timeout.toMillis(), 10_000));
      } catch (XGBoostError | RuntimeException e) {
        // the tracker is stopped below either way
      }
      stopQuietly(tracker);
    }
  }

  private static void stopQuietly(RabitTracker t) {
    try {
      t.stop();
    } catch (XGBoostError | RuntimeException e) {
      // nothing more to do
    }
  }
}
