package io.kiln.coordinator.scheduling;

import io.kiln.protocol.cluster.WorkerCommand;
import io.kiln.protocol.proto.Resources;
import io.kiln.protocol.proto.WorkerInfo;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.receptionist.Receptionist;

/**
 * The resource registry and placement queue. Discovers worker agents through the receptionist,
 * asks each for its resources, places jobs on free workers (queueing them in FIFO order when none
 * are free) and tells a job when a worker holding one of its ranks disappears.
 *
 * <p>State is in memory: after a coordinator restart it is rebuilt from the workers (their
 * descriptions) and from the jobs (which re-request placement when they recover as pending).
 */
public final class Scheduler extends AbstractBehavior<Scheduler.Command> {

  public sealed interface Command {}

  /** Ask for workers; the answer ({@link Placed}, later {@link WorkerLost}) goes to {@code notify}. */
  public record RequestPlacement(String jobId, Resources resources, ActorRef<JobNotice> replyTo) implements Command {}

  /**
   * A job recovered after a coordinator restart holds these workers again (its tasks kept running
   * on them); they count as used from now on, also for workers that have not re-joined yet.
   */
  public record Reserve(String jobId, Resources resources, List<String> workerIds, ActorRef<JobNotice> replyTo)
      implements Command {}

  /** A worker runs a task this scheduler did not start (it kept running across a coordinator restart). */
  public record TaskFound(String jobId, String taskId, String workerId, ActorRef<WorkerCommand> worker) {}

  /** The job no longer needs its workers (it ended), or no longer waits for them. */
  public record Release(String jobId) implements Command {}

  /**
   * An elastic job gives back one worker: an offered worker it cannot use, or the worker of a rank
   * it dropped ({@code suspect}: the rank failed or went silent, so the worker is not offered again
   * until it answers a fresh DescribeWorker; a dead one never does and leaves the cluster).
   */
  public record ReleaseWorker(String jobId, String workerId, boolean suspect) implements Command {}

  /**
   * An elastic job below its maximum would take one more worker: the next free worker that fits is
   * offered to it once ({@link Grown}); the job asks again after it has taken it in.
   */
  public record WantMore(String jobId) implements Command {}

  public record ListWorkers(ActorRef<List<WorkerView>> replyTo) implements Command {}

  /** Why a job waits in the queue (null when it is not queued). */
  public record GetQueueReason(String jobId, ActorRef<Optional<String>> replyTo) implements Command {}

  private record ListingUpdated(Receptionist.Listing listing) implements Command {}

  private record WorkerDescribed(ActorRef<WorkerCommand> ref, WorkerInfo info) implements Command {}

  private record DescribeFailed(ActorRef<WorkerCommand> ref, String reason) implements Command {}

  private record WorkerVerified(String workerId) implements Command {}

  /** A suspect did not answer: it stays out of placement until it leaves the cluster. */
  private record WorkerVerifyFailed() implements Command {}

  /** Messages to a job. */
  public sealed interface JobNotice {}

  public record Placed(List<Assignment> assignments) implements JobNotice {}

  public record Assignment(String workerId, ActorRef<WorkerCommand> worker) {}

  public record WorkerLost(String workerId, String reason) implements JobNotice {}

  /** One more worker for an elastic job that asked ({@link WantMore}); it is allocated to the job. */
  public record Grown(Assignment assignment) implements JobNotice {}

  /** A worker as the API shows it. */
  public record WorkerView(String id, String address, int cpus, long memoryMb, int gpus, int freeCpus, int freeGpus,
                           List<String> jobs) {}

  private record Registered(ActorRef<WorkerCommand> ref, WorkerSlot slot) {}

  private record Request(String jobId, Resources resources, ActorRef<JobNotice> replyTo) {}

  private record Allocation(Resources resources, List<String> workerIds, ActorRef<JobNotice> replyTo, int max,
                            boolean wantsMore) {
    Allocation with(List<String> ids, boolean wants) {
      return new Allocation(resources, List.copyOf(ids), replyTo, max, wants);
    }
  }

  public static Behavior<Command> create() {
    return create(null);
  }

  /** @param taskFound told about tasks found running on (re-)joining workers; null: they are stopped */
  public static Behavior<Command> create(ActorRef<TaskFound> taskFound) {
    return Behaviors.setup(ctx -> new Scheduler(ctx, taskFound));
  }

  private final ActorRef<TaskFound> taskFound;

  private final Map<ActorRef<WorkerCommand>, Registered> workers = new HashMap<>();
  private final LinkedHashMap<String, Request> queue = new LinkedHashMap<>();
  private final Map<String, Allocation> allocations = new HashMap<>();
  private final Set<ActorRef<WorkerCommand>> describing = new HashSet<>();
  /** Workers of dropped ranks, not placed on until they answer again (see {@link ReleaseWorker}). */
  private final Set<String> suspects = new HashSet<>();

  private Scheduler(ActorContext<Command> context, ActorRef<TaskFound> taskFound) {
    super(context);
    this.taskFound = taskFound;
    ActorRef<Receptionist.Listing> listingAdapter = context.messageAdapter(Receptionist.Listing.class, ListingUpdated::new);
    context.getSystem().receptionist().tell(Receptionist.subscribe(WorkerCommand.SERVICE_KEY, listingAdapter));
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(ListingUpdated.class, this::onListing)
        .onMessage(WorkerDescribed.class, this::onDescribed)
        .onMessage(DescribeFailed.class, this::onDescribeFailed)
        .onMessage(RequestPlacement.class, this::onRequest)
        .onMessage(Release.class, this::onRelease)
        .onMessage(Reserve.class, this::onReserve)
        .onMessage(ReleaseWorker.class, this::onReleaseWorker)
        .onMessage(WantMore.class, this::onWantMore)
        .onMessage(WorkerVerifyFailed.class, v -> this)
        .onMessage(WorkerVerified.class, v -> {
          if (suspects.remove(v.workerId())) {
            getContext().getLog().info("worker {} answers again: it can take work", v.workerId());
            drainQueue();
          }
          return this;
        })
        .onMessage(ListWorkers.class, this::onList)
        .onMessage(GetQueueReason.class, this::onQueueReason)
        .build();
  }

  private Behavior<Command> onListing(ListingUpdated msg) {
    // All instances, reachable or not: an unreachable node may come back; a removed one will not.
    Set<ActorRef<WorkerCommand>> live = msg.listing().getAllServiceInstances(WorkerCommand.SERVICE_KEY);
    for (ActorRef<WorkerCommand> ref : live) {
      if (!workers.containsKey(ref) && describing.add(ref)) describe(ref, 1);
    }
    for (Iterator<Map.Entry<ActorRef<WorkerCommand>, Registered>> it = workers.entrySet().iterator(); it.hasNext(); ) {
      Map.Entry<ActorRef<WorkerCommand>, Registered> e = it.next();
      if (!live.contains(e.getKey())) {
        it.remove();
        suspects.remove(e.getValue().slot().workerId());
        workerGone(e.getValue().slot(), "worker " + e.getValue().slot().workerId() + " left the cluster (node "
            + e.getKey().path().address() + " crashed, was stopped or became unreachable)");
      }
    }
    describing.retainAll(live);
    return this;
  }

  private void describe(ActorRef<WorkerCommand> ref, int attempt) {
    getContext().ask(WorkerInfo.class, ref, Duration.ofSeconds(5), WorkerCommand.DescribeWorker::new,
        (info, failure) -> info != null ? new WorkerDescribed(ref, info)
            : new DescribeFailed(ref, "attempt " + attempt + ": " + failure.getMessage()));
  }

  private Behavior<Command> onDescribed(WorkerDescribed msg) {
    if (!describing.remove(msg.ref())) return this; // left meanwhile
    WorkerInfo i = msg.info();
    WorkerSlot slot = new WorkerSlot(i.getWorkerId(), msg.ref().path().address().toString(), i.getResources().getCpus(),
        i.getResources().getMemoryMb(), i.getResources().getGpus(), 0, 0, 0, Set.of());
    workers.put(msg.ref(), new Registered(msg.ref(), slot));
    getContext().getLog().info("worker {} joined: {} CPU(s), {} MB, {} GPU(s) at {}", slot.workerId(), slot.cpus(),
        slot.memoryMb(), slot.gpus(), slot.address());
    // workers a recovered job holds count as used as soon as they are back
    for (Map.Entry<String, Allocation> e : allocations.entrySet()) {
      if (e.getValue().workerIds().contains(slot.workerId())) {
        updateSlot(slot.workerId(), s -> withUse(s, e.getValue().resources(), e.getKey(), +1));
      }
    }
    for (String running : i.getRunningTaskIdsList()) {
      String jobId = running.replaceAll("-r\\d+$", "");
      if (taskFound != null) {
        // a task that kept running across a coordinator restart: its job decides whether to re-attach it
        taskFound.tell(new TaskFound(jobId, running, slot.workerId(), msg.ref()));
      } else {
        getContext().getLog().warn("worker {} runs task {} unknown to this coordinator; stopping it", slot.workerId(), running);
        msg.ref().tell(new WorkerCommand.StopTask(jobId, running, "orphaned by a coordinator restart"));
      }
    }
    drainQueue();
    return this;
  }

  private Behavior<Command> onDescribeFailed(DescribeFailed msg) {
    if (describing.contains(msg.ref())) {
      getContext().getLog().warn("worker at {} did not describe itself ({}); retrying", msg.ref().path().address(), msg.reason());
      describe(msg.ref(), 2);
    }
    return this;
  }

  private Behavior<Command> onRequest(RequestPlacement msg) {
    if (allocations.containsKey(msg.jobId())) {
      // Idempotent: a job that asks again (e.g. after its own restart) gets what it holds.
      msg.replyTo().tell(new Placed(assignments(allocations.get(msg.jobId()).workerIds())));
      return this;
    }
    queue.put(msg.jobId(), new Request(msg.jobId(), msg.resources(), msg.replyTo()));
    drainQueue();
    return this;
  }

  private Behavior<Command> onRelease(Release msg) {
    queue.remove(msg.jobId());
    Allocation a = allocations.remove(msg.jobId());
    if (a != null) {
      for (String workerId : a.workerIds()) updateSlot(workerId, s -> withUse(s, a.resources(), msg.jobId(), -1));
      drainQueue();
    }
    return this;
  }

  private Behavior<Command> onReserve(Reserve msg) {
    if (allocations.containsKey(msg.jobId())) return this;
    queue.remove(msg.jobId());
    Resources res = Placement.normalise(msg.resources());
    allocations.put(msg.jobId(), new Allocation(res, List.copyOf(msg.workerIds()), msg.replyTo(), Placement.maxWorkers(res),
        false));
    for (String workerId : msg.workerIds()) updateSlot(workerId, s -> withUse(s, res, msg.jobId(), +1));
    return this;
  }

  private Behavior<Command> onReleaseWorker(ReleaseWorker msg) {
    Allocation a = allocations.get(msg.jobId());
    if (a == null || !a.workerIds().contains(msg.workerId())) return this;
    List<String> rest = new ArrayList<>(a.workerIds());
    rest.remove(msg.workerId());
    allocations.put(msg.jobId(), a.with(rest, a.wantsMore()));
    updateSlot(msg.workerId(), s -> withUse(s, a.resources(), msg.jobId(), -1));
    if (msg.suspect()) {
      suspects.add(msg.workerId());
      workers.values().stream().filter(r -> r.slot().workerId().equals(msg.workerId())).findFirst()
          .ifPresent(r -> getContext().ask(WorkerInfo.class, r.ref(), Duration.ofSeconds(5),
              WorkerCommand.DescribeWorker::new,
              (info, failure) -> info != null ? new WorkerVerified(msg.workerId()) : new WorkerVerifyFailed()));
    }
    drainQueue();
    return this;
  }

  private Behavior<Command> onWantMore(WantMore msg) {
    Allocation a = allocations.get(msg.jobId());
    if (a == null || a.workerIds().size() >= a.max()) return this;
    allocations.put(msg.jobId(), a.with(a.workerIds(), true));
    offerGrowth();
    return this;
  }

  /** Offers free workers to elastic jobs that asked for more, after the queue had its turn. */
  private void offerGrowth() {
    for (Map.Entry<String, Allocation> e : allocations.entrySet()) {
      Allocation a = e.getValue();
      if (!a.wantsMore() || a.workerIds().size() >= a.max()) continue;
      List<WorkerSlot> others = slots().stream().filter(w -> !a.workerIds().contains(w.workerId())).toList();
      Optional<List<String>> one = Placement.place(a.resources().toBuilder().setWorkers(1).build(), others);
      if (one.isEmpty()) continue;
      String workerId = one.get().get(0);
      List<String> ids = new ArrayList<>(a.workerIds());
      ids.add(workerId);
      e.setValue(a.with(ids, false));
      updateSlot(workerId, s -> withUse(s, a.resources(), e.getKey(), +1));
      getContext().getLog().info("job {} grows onto {}", e.getKey(), workerId);
      assignments(List.of(workerId)).forEach(asg -> a.replyTo().tell(new Grown(asg)));
    }
  }

  private Behavior<Command> onList(ListWorkers msg) {
    List<WorkerView> views = new ArrayList<>();
    for (Registered r : workers.values()) {
      WorkerSlot s = r.slot();
      views.add(new WorkerView(s.workerId(), s.address(), s.cpus(), s.memoryMb(), s.gpus(), s.freeCpus(), s.freeGpus(),
          s.jobIds().stream().sorted().toList()));
    }
    views.sort((a, b) -> a.id().compareTo(b.id()));
    msg.replyTo().tell(views);
    return this;
  }

  private Behavior<Command> onQueueReason(GetQueueReason msg) {
    Request r = queue.get(msg.jobId());
    msg.replyTo().tell(r == null ? Optional.empty() : Optional.of(Placement.waitingReason(r.resources(), slots())));
    return this;
  }

  /** Places queued jobs in order; a job that does not fit does not block smaller ones behind it. */
  private void drainQueue() {
    for (Iterator<Request> it = queue.values().iterator(); it.hasNext(); ) {
      Request r = it.next();
      Resources res = Placement.normalise(r.resources());
      int max = Placement.maxWorkers(res);
      // an elastic job starts with as many ranks as fit between its minimum and maximum
      Optional<List<String>> chosen = Optional.empty();
      for (int n = max; n >= Placement.minWorkers(res) && chosen.isEmpty(); n--) {
        chosen = Placement.place(res.toBuilder().setWorkers(n).build(), slots());
      }
      if (chosen.isEmpty()) continue;
      it.remove();
      allocations.put(r.jobId(), new Allocation(res, chosen.get(), r.replyTo(), max, false));
      for (String workerId : chosen.get()) updateSlot(workerId, s -> withUse(s, res, r.jobId(), +1));
      getContext().getLog().info("job {} placed on {}", r.jobId(), chosen.get());
      r.replyTo().tell(new Placed(assignments(chosen.get())));
    }
    offerGrowth();
  }

  private void workerGone(WorkerSlot slot, String reason) {
    getContext().getLog().warn(reason);
    for (String jobId : slot.jobIds()) {
      Allocation a = allocations.get(jobId);
      if (a == null) continue;
      // the job keeps its other workers: an elastic job continues on them; any other job fails
      // and releases them
      List<String> rest = new ArrayList<>(a.workerIds());
      rest.remove(slot.workerId());
      allocations.put(jobId, a.with(rest, a.wantsMore()));
      a.replyTo().tell(new WorkerLost(slot.workerId(), reason));
    }
    drainQueue();
  }

  private List<Assignment> assignments(List<String> workerIds) {
    List<Assignment> out = new ArrayList<>();
    for (String id : workerIds) {
      workers.values().stream().filter(r -> r.slot().workerId().equals(id)).findFirst()
          .ifPresent(r -> out.add(new Assignment(id, r.ref())));
    }
    return out;
  }

  private List<WorkerSlot> slots() {
    return workers.values().stream().map(Registered::slot).filter(s -> !suspects.contains(s.workerId())).toList();
  }

  private void updateSlot(String workerId, java.util.function.UnaryOperator<WorkerSlot> f) {
    for (Map.Entry<ActorRef<WorkerCommand>, Registered> e : workers.entrySet()) {
      if (e.getValue().slot().workerId().equals(workerId)) {
        e.setValue(new Registered(e.getKey(), f.apply(e.getValue().slot())));
      }
    }
  }

  private static WorkerSlot withUse(WorkerSlot s, Resources r, String jobId, int sign) {
    Set<String> jobs = new HashSet<>(s.jobIds());
    if (sign > 0) jobs.add(jobId); else jobs.remove(jobId);
    return new WorkerSlot(s.workerId(), s.address(), s.cpus(), s.memoryMb(), s.gpus(),
        s.usedCpus() + sign * r.getCpusPerWorker(), s.usedMemoryMb() + sign * r.getMemoryMbPerWorker(),
        s.usedGpus() + sign * r.getGpusPerWorker(), Set.copyOf(jobs));
  }
}
