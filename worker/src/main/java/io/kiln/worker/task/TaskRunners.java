package io.kiln.worker.task;

import java.util.Map;
import java.util.Optional;
import java.util.ServiceLoader;
import java.util.TreeMap;

/** The {@link TaskRunner}s on the class path, by algorithm name. */
public final class TaskRunners {
  private static final Map<String, TaskRunner> RUNNERS = load();

  private TaskRunners() {}

  public static Optional<TaskRunner> find(String algorithm) {
    return Optional.ofNullable(RUNNERS.get(algorithm));
  }

  public static java.util.Set<String> names() {
    return RUNNERS.keySet();
  }

  private static Map<String, TaskRunner> load() {
    Map<String, TaskRunner> m = new TreeMap<>();
    for (TaskRunner r : ServiceLoader.load(TaskRunner.class, TaskRunners.class.getClassLoader())) {
      TaskRunner previous = m.put(r.name(), r);
      if (previous != null) {
        throw new IllegalStateException("two task runners for algorithm '" + r.name() + "': "
            + previous.getClass().getName() + " and " + r.getClass().getName());
      }
    }
    return Map.copyOf(m);
  }
}
