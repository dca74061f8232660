package io.kiln.coordinator.hosting;

import io.kiln.protocol.cluster.WorkerCommand;
import io.kiln.protocol.proto.HostedProcessReport;
import io.kiln.protocol.proto.HostedProcessSpec;
import io.kiln.protocol.proto.WorkerInfo;
import java.time.Duration;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.receptionist.Receptionist;

/**
 * The coordinator's gateway to processes hosted on workers (endpoint replicas, batch-transform
 * splits): knows the live worker agents from the receptionist, places each process on the worker
 * that hosts the fewest of them for this coordinator (so a generation's replicas and a job's splits
 * spread out), asks the worker to start it and waits for its report. A worker that leaves while a
 * start is pending fails that start at once, so the caller can retry elsewhere. Blocking calls are
 * meant for the blocking dispatcher.
 */
public final class WorkerHosts {
  /** Where a process runs (the worker's id) and how it went. */
  public record Placed(String worker, HostedProcessReport report) {}

  private final ActorSystem<?> system;
  private final ActorRefResolver resolver;
  /** Live workers by id (a worker that re-joins with a fresh actor system keeps its id, not its ref). */
  private volatile Map<String, ActorRef<WorkerCommand>> byId = Map.of();
  /** Ids seen live since this coordinator started: only those can be known to have left. */
  private final Set<String> seen = ConcurrentHashMap.newKeySet();
  private final Map<String, AtomicInteger> hostedBy = new ConcurrentHashMap<>();
  /**
   * Stops asked for while the worker was unreachable or gone: sent when it is back (a worker that
   * re-joins keeps its hosted processes, which must not outlive the replica the coordinator replaced).
   */
  private final Map<String, Set<String>> pendingStops = new ConcurrentHashMap<>();

  private record Described(ActorRef<WorkerCommand> ref, WorkerInfo info) {}

  public WorkerHosts(ActorSystem<?> system) {
    this.system = system;
    this.resolver = ActorRefResolver.get(system);
    system.systemActorOf(Behaviors.<Object>setup(ctx -> {
      ctx.getSystem().receptionist().tell(Receptionist.subscribe(WorkerCommand.SERVICE_KEY,
          ctx.messageAdapter(Receptionist.Listing.class, l -> l)));
      Map<ActorRef<WorkerCommand>, String> ids = new HashMap<>();
      Set<ActorRef<WorkerCommand>> listed = new HashSet<>();
      Runnable publish = () -> {
        Map<String, ActorRef<WorkerCommand>> m = new HashMap<>();
        ids.forEach((ref, id) -> { if (listed.contains(ref)) m.put(id, ref); });
        seen.addAll(m.keySet());
        byId = Map.copyOf(m);
        m.forEach((id, ref) -> {
          Set<String> stops = pendingStops.remove(id);
          if (stops != null) stops.forEach(p -> ref.tell(new WorkerCommand.StopHosted(p, "replaced while its worker was away")));
        });
      };
      return Behaviors.receiveMessage(msg -> {
        if (msg instanceof Receptionist.Listing l) {
          listed.clear();
          listed.addAll(l.getServiceInstances(WorkerCommand.SERVICE_KEY));
          ids.keySet().retainAll(listed);
          for (ActorRef<WorkerCommand> w : listed) {
            if (!ids.containsKey(w)) {
              ctx.ask(WorkerInfo.class, w, Duration.ofSeconds(10), WorkerCommand.DescribeWorker::new,
                  (info, err) -> info != null ? new Described(w, info) : "describe failed");
            }
          }
          publish.run();
        } else if (msg instanceof Described d && listed.contains(d.ref())) {
          ids.put(d.ref(), d.info().getWorkerId());
          publish.run();
        }
        return Behaviors.same();
      });
    }), "hosting-workers", Props.empty());
  }

  /**
   * Whether worker {@code workerId} may still be there: it is live now, or it has not been seen
   * since this coordinator started (after a restart, workers re-join over several seconds).
   */
  public boolean isLive(String workerId) {
    return byId.containsKey(workerId) || !seen.contains(workerId);
  }

  /**
   * Starts {@code spec} on the least-busy worker and waits (at most {@code timeout} beyond the spec's
   * own timeout) for its report. Throws {@link HostingException} when no worker is there or the
   * chosen one leaves or does not answer; a report of a failed process is returned, not thrown.
   */
  public Placed start(HostedProcessSpec spec, Duration timeout) {
    Map.Entry<String, ActorRef<WorkerCommand>> picked = pick(spec.getId());
    String key = picked.getKey();
    ActorRef<WorkerCommand> worker = picked.getValue();
    boolean keep = false;
    try {
      CompletableFuture<HostedProcessReport> reply = AskPattern.<WorkerCommand, HostedProcessReport>ask(worker,
          r -> new WorkerCommand.StartHosted(spec, r), timeout.plus(Duration.ofMillis(spec.getTimeoutMs())), system.scheduler())
          .toCompletableFuture();
      while (true) {
        try {
          HostedProcessReport report = reply.get(500, TimeUnit.MILLISECONDS);
          keep = report.getOutcome() == HostedProcessReport.Outcome.READY;
          return new Placed(key, report);
        } catch (TimeoutException e) {
          if (!isLive(key)) throw new HostingException("worker " + key + " left while starting " + spec.getId());
        }
      }
    } catch (java.util.concurrent.ExecutionException e) {
      throw new HostingException("worker " + key + " did not answer for " + spec.getId() + ": "
          + e.getCause().getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new HostingException("interrupted while starting " + spec.getId());
    } finally {
      if (!keep) release(key);
    }
  }

  /** Counts a process found running after a coordinator restart towards its worker's share. */
  public void adopt(String worker) {
    hostedBy.computeIfAbsent(worker, k -> new AtomicInteger()).incrementAndGet();
  }

  /** Stops a process started by {@link #start} (fire and forget: the worker stops it). */
  public void stop(String workerId, String id, String reason) {
    release(workerId);
    ActorRef<WorkerCommand> ref = byId.get(workerId);
    if (id.isEmpty()) return;
    if (ref == null) {
      system.log().info("hosted process {}: worker {} is not reachable; stopping it when the worker is back", id, workerId);
      pendingStops.computeIfAbsent(workerId, k -> ConcurrentHashMap.newKeySet()).add(id);
      return;
    }
    ref.tell(new WorkerCommand.StopHosted(id, reason));
  }

  /** The live worker's agent, in ActorRefResolver form (for the record). */
  public String refOf(String workerId) {
    ActorRef<WorkerCommand> ref = byId.get(workerId);
    return ref == null ? "" : resolver.toSerializationFormat(ref);
  }

  /**
   * The worker to use: the fewest processes placed by this coordinator, ties broken by id; counted
   * at once (under the lock), so that processes started together spread out.
   */
  private Map.Entry<String, ActorRef<WorkerCommand>> pick(String id) {
    awaitWorkers(id);
    synchronized (this) {
      Map.Entry<String, ActorRef<WorkerCommand>> best = byId.entrySet().stream()
          .min(Comparator.<Map.Entry<String, ActorRef<WorkerCommand>>>comparingInt(e -> count(e.getKey())).thenComparing(Map.Entry::getKey))
          .orElseThrow(() -> noWorker(id));
      hostedBy.computeIfAbsent(best.getKey(), k -> new AtomicInteger()).incrementAndGet();
      return best;
    }
  }

  /** Just after a (coordinator) start the workers are joining: waits up to 5 s for one; throws when there is none. */
  private void awaitWorkers(String id) {
    for (int i = 0; i < 50 && byId.isEmpty(); i++) {
      try {
        Thread.sleep(100);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        break;
      }
    }
    if (byId.isEmpty()) throw noWorker(id);
  }

  private static HostingException noWorker(String id) {
    return new HostingException("no worker is registered to run " + id + ": start a worker (kiln local up starts two) and try again");
  }

  private int count(String worker) {
    AtomicInteger n = hostedBy.get(worker);
    return n == null ? 0 : n.get();
  }

  private void release(String worker) {
    AtomicInteger n = hostedBy.get(worker);
    if (n != null && n.get() > 0) n.decrementAndGet();
  }
}
