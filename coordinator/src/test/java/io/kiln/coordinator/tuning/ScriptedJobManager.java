package io.kiln.coordinator.tuning;

import io.kiln.coordinator.jobs.JobManager;
import io.kiln.coordinator.jobs.JobState;
import io.kiln.coordinator.jobs.JobStatus;
import io.kiln.protocol.proto.JobCompleted;
import io.kiln.protocol.proto.JobEvent;
import io.kiln.protocol.proto.JobFailed;
import io.kiln.protocol.proto.JobStarted;
import io.kiln.protocol.proto.JobStopped;
import io.kiln.protocol.proto.JobSubmitted;
import io.kiln.protocol.proto.JobSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.pattern.StatusReply;

/**
 * The job manager's protocol with jobs whose outcome the test decides: jobs are real {@link JobState}
 * folds of real job events; the test completes, fails or stops them. Records what it was asked.
 */
final class ScriptedJobManager {
  final Map<String, JobState> jobs = new ConcurrentHashMap<>();
  final List<JobSpec> submitted = new CopyOnWriteArrayList<>();
  final List<String> submittedBy = new CopyOnWriteArrayList<>();
  final List<String> stopped = new CopyOnWriteArrayList<>();
  /** While true, submissions wait in {@link #held} until {@link #release} (a slow job manager). */
  volatile boolean hold;
  final List<JobManager.Submit> held = new CopyOnWriteArrayList<>();
  private org.apache.pekko.actor.typed.ActorRef<JobManager.Command> self;

  Behavior<JobManager.Command> behavior() {
    return Behaviors.setup(ctx -> {
      self = ctx.getSelf();
      return Behaviors.receiveMessage(m -> {
      if (m instanceof JobManager.Submit s && hold) {
        held.add(s);
      } else if (m instanceof JobManager.Submit s) {
        String id = "job-" + (submitted.size() + 1);
        submitted.add(s.spec());
        submittedBy.add(s.submittedBy());
        JobState st = apply(JobState.empty(id), JobEvent.newBuilder().setSubmitted(JobSubmitted.newBuilder()
            .setSpec(s.spec()).setSubmittedBy(s.submittedBy())));
        st = apply(st, JobEvent.newBuilder().setStarted(JobStarted.getDefaultInstance()));
        jobs.put(id, st);
        s.replyTo().tell(StatusReply.success(st));
      } else if (m instanceof JobManager.Get g) {
        g.replyTo().tell(Optional.ofNullable(jobs.get(g.jobId())));
      } else if (m instanceof JobManager.ListJobs l) {
        l.replyTo().tell(new ArrayList<>(jobs.values()));
      } else if (m instanceof JobManager.Stop s) {
        stopped.add(s.jobId());
        JobState st = jobs.get(s.jobId());
        if (st != null && !st.status().isFinal()) {
          jobs.put(s.jobId(), apply(st, JobEvent.newBuilder().setStopped(JobStopped.newBuilder().setReason(s.reason()))));
          s.replyTo().tell(StatusReply.success(jobs.get(s.jobId())));
        } else {
          s.replyTo().tell(StatusReply.error("no running job " + s.jobId()));
        }
      }
      return Behaviors.same();
      });
    });
  }

  /** Answers the held submissions. */
  void release() {
    hold = false;
    held.forEach(self::tell);
    held.clear();
  }

  void complete(String jobId, Map<String, Double> metrics) {
    jobs.computeIfPresent(jobId, (k, st) -> apply(st, JobEvent.newBuilder().setCompleted(JobCompleted.newBuilder().putAllMetrics(metrics))));
  }

  void fail(String jobId, String reason) {
    jobs.computeIfPresent(jobId, (k, st) -> apply(st, JobEvent.newBuilder().setFailed(JobFailed.newBuilder().setReason(reason))));
  }

  List<String> running() {
    return jobs.values().stream().filter(j -> j.status() == JobStatus.Running).map(JobState::jobId).sorted().toList();
  }

  /** The hyperparameter {@code name} of job {@code jobId}'s spec. */
  String hp(String jobId, String name) {
    return jobs.get(jobId).spec().getHyperparametersMap().get(name);
  }

  static JobState apply(JobState s, JobEvent.Builder e) {
    return s.apply(e.setJobId(s.jobId()).setTimestampMs(System.currentTimeMillis()).build());
  }
}
