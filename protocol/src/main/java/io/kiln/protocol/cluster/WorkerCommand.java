package io.kiln.protocol.cluster;

import io.kiln.protocol.proto.TaskAssignment;
import io.kiln.protocol.proto.TaskReport;
import io.kiln.protocol.proto.WorkerInfo;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.receptionist.ServiceKey;

/**
 * The worker gateway: everything the control plane may tell a worker agent. Each record crosses
 * nodes, so each has a wire form in {@code cluster.proto} (see {@link KilnSerializer}).
 */
public sealed interface WorkerCommand extends KilnWireMessage
    permits WorkerCommand.DescribeWorker, WorkerCommand.StartTask, WorkerCommand.StopTask, WorkerCommand.FormGroup,
    WorkerCommand.RegroupTask, WorkerCommand.AttachTask, WorkerCommand.StartHosted, WorkerCommand.StopHosted {

  /** Worker agents register under this key; the scheduler discovers them through the receptionist. */
  ServiceKey<WorkerCommand> SERVICE_KEY = ServiceKey.create(WorkerCommand.class, "kiln-worker");

  /** Ask for the worker's id, resources and running tasks. */
  record DescribeWorker(ActorRef<WorkerInfo> replyTo) implements WorkerCommand {}

  /** Run one rank of a job; every report about it goes to {@code reportTo}. */
  record StartTask(TaskAssignment assignment, ActorRef<TaskReport> reportTo) implements WorkerCommand {}

  /** Stop a running task; the task answers with a TaskFailed report carrying the reason. */
  record StopTask(String jobId, String taskId, String reason) implements WorkerCommand {}

  /**
   * The group of a distributed job is complete: every rank's data-plane address (and, for NCCL,
   * rank 0's unique id). Sent to each rank after all of them reported a TaskRendezvous.
   */
  record FormGroup(String jobId, String taskId, io.kiln.protocol.proto.GroupSpec group) implements WorkerCommand {}

  /**
   * Elastic jobs: leave generation {@code generation} and report a new TaskRendezvous (members
   * change: a rank joins, or one was lost). {@code urgent} (a member was lost): abort a collective in
   * flight rather than wait for it to time out on a peer that no longer answers; otherwise leave at
   * the next step boundary.
   */
  record RegroupTask(String jobId, String taskId, int generation, String reason, boolean urgent)
      implements WorkerCommand {}

  /**
   * After a coordinator restart: the job adopts a task that kept running; its reports (held while no
   * coordinator listened) go to {@code reportTo} from now on.
   */
  record AttachTask(String jobId, String taskId, ActorRef<TaskReport> reportTo) implements WorkerCommand {}

  /**
   * Run a deploy-module process (an endpoint replica or a batch-transform split) on this worker; one
   * {@link io.kiln.protocol.proto.HostedProcessReport} answers: ready, exited or failed. A second
   * StartHosted with an id that is already running answers that process's report again.
   */
  record StartHosted(io.kiln.protocol.proto.HostedProcessSpec spec,
                     ActorRef<io.kiln.protocol.proto.HostedProcessReport> replyTo) implements WorkerCommand {}

  /** Stop a hosted process (SIGTERM, then SIGKILL); unknown ids are ignored. */
  record StopHosted(String id, String reason) implements WorkerCommand {}
}
