package io.kiln.sdk;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonInclude;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A JobSpec in the JSON shape of docs/api.md (the protobuf {@code kiln.v1.JobSpec}), for building
 * a job in Java without the protocol module. Unset fields are left out of the JSON, so the
 * coordinator's defaults apply. Example:
 * <pre>{@code
 * JobSpec spec = JobSpec.named("fashion-mlp").algorithm("mlp")
 *     .channel("train", "/usr/share/datasets/fashion-mnist")
 *     .hyperparameter("epochs", 1).hyperparameter("batch_size", 128).workers(2);
 * JobView job = client.createJob(spec);
 * }</pre>
 */
@JsonInclude(JsonInclude.Include.NON_EMPTY)
@JsonIgnoreProperties(ignoreUnknown = true)
public class JobSpec {
    private String name;
    private String algorithm;
    private Map<String, String> hyperparameters = new LinkedHashMap<>();
    private Map<String, String> channels = new LinkedHashMap<>();
    private Resources resources;
    private Stopping stopping;
    private Checkpoint checkpoint;
    private String outputUri;

    public static JobSpec named(String name) {
        JobSpec s = new JobSpec();
        s.name = name;
        return s;
    }

    // fluent builders

    public JobSpec algorithm(String algorithm) {
        this.algorithm = algorithm;
        return this;
    }

    /** Adds a hyperparameter; the value is stored as a string (API hyperparameters are strings). */
    public JobSpec hyperparameter(String key, Object value) {
        hyperparameters.put(key, String.valueOf(value));
        return this;
    }

    public JobSpec channel(String channel, String uri) {
        channels.put(channel, uri);
        return this;
    }

    public JobSpec workers(int workers) {
        resources().setWorkers(workers);
        return this;
    }

    public JobSpec outputUri(String uri) {
        this.outputUri = uri;
        return this;
    }

    /** The resources block, created on first use. */
    public Resources resources() {
        if (resources == null) {
            resources = new Resources();
        }
        return resources;
    }

    /** The stopping block, created on first use. */
    public Stopping stopping() {
        if (stopping == null) {
            stopping = new Stopping();
        }
        return stopping;
    }

    /** The checkpoint block, created on first use. */
    public Checkpoint checkpoint() {
        if (checkpoint == null) {
            checkpoint = new Checkpoint();
        }
        return checkpoint;
    }

    // bean accessors (used by Jackson)

    public String getName() {
        return name;
    }

    public void setName(String name) {
        this.name = name;
    }

    public String getAlgorithm() {
        return algorithm;
    }

    public void setAlgorithm(String algorithm) {
        this.algorithm = algorithm;
    }

    public Map<String, String> getHyperparameters() {
        return hyperparameters;
    }

    public void setHyperparameters(Map<String, String> hyperparameters) {
        this.hyperparameters = hyperparameters == null ? new LinkedHashMap<>() : new LinkedHashMap<>(hyperparameters);
    }

    public Map<String, String> getChannels() {
        return channels;
    }

    public void setChannels(Map<String, String> channels) {
        this.channels = channels == null ? new LinkedHashMap<>() : new LinkedHashMap<>(channels);
    }

    public Resources getResources() {
        return resources;
    }

    public void setResources(Resources resources) {
        this.resources = resources;
    }

    public Stopping getStopping() {
        return stopping;
    }

    public void setStopping(Stopping stopping) {
        this.stopping = stopping;
    }

    public Checkpoint getCheckpoint() {
        return checkpoint;
    }

    public void setCheckpoint(Checkpoint checkpoint) {
        this.checkpoint = checkpoint;
    }

    public String getOutputUri() {
        return outputUri;
    }

    public void setOutputUri(String outputUri) {
        this.outputUri = outputUri;
    }

    /** {@code resources}: null fields are left to the coordinator's defaults. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public static class Resources {
        private Integer workers;
        private Integer cpusPerWorker;
        private Long memoryMbPerWorker;
        private Integer gpusPerWorker;
        private Integer minWorkers;
        private Integer maxWorkers;
        private String collective;

        public Integer getWorkers() {
            return workers;
        }

        public void setWorkers(Integer workers) {
            this.workers = workers;
        }

        public Integer getCpusPerWorker() {
            return cpusPerWorker;
        }

        public void setCpusPerWorker(Integer cpusPerWorker) {
            this.cpusPerWorker = cpusPerWorker;
        }

        public Long getMemoryMbPerWorker() {
            return memoryMbPerWorker;
        }

        public void setMemoryMbPerWorker(Long memoryMbPerWorker) {
            this.memoryMbPerWorker = memoryMbPerWorker;
        }

        public Integer getGpusPerWorker() {
            return gpusPerWorker;
        }

        public void setGpusPerWorker(Integer gpusPerWorker) {
            this.gpusPerWorker = gpusPerWorker;
        }

        public Integer getMinWorkers() {
            return minWorkers;
        }

        public void setMinWorkers(Integer minWorkers) {
            this.minWorkers = minWorkers;
        }

        public Integer getMaxWorkers() {
            return maxWorkers;
        }

        public void setMaxWorkers(Integer maxWorkers) {
            this.maxWorkers = maxWorkers;
        }

        public String getCollective() {
            return collective;
        }

        public void setCollective(String collective) {
            this.collective = collective;
        }
    }

    /** {@code stopping}: 0 / null = no limit. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public static class Stopping {
        private Long maxRuntimeSeconds;
        private Long maxSteps;

        public Long getMaxRuntimeSeconds() {
            return maxRuntimeSeconds;
        }

        public void setMaxRuntimeSeconds(Long maxRuntimeSeconds) {
            this.maxRuntimeSeconds = maxRuntimeSeconds;
        }

        public Long getMaxSteps() {
            return maxSteps;
        }

        public void setMaxSteps(Long maxSteps) {
            this.maxSteps = maxSteps;
        }
    }

    /** {@code checkpoint}: everySteps 0 / null = only at epoch end. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    @JsonIgnoreProperties(ignoreUnknown = true)
    public static class Checkpoint {
        private Integer everySteps;
        /** A checkpoint folder, or a job's folder or its checkpoints/ folder (its newest checkpoint). */
        private String resumeFrom;
        /** How many checkpoints to keep (default 3). */
        private Integer keep;

        public String getResumeFrom() {
            return resumeFrom;
        }

        public void setResumeFrom(String resumeFrom) {
            this.resumeFrom = resumeFrom;
        }

        public Integer getKeep() {
            return keep;
        }

        public void setKeep(Integer keep) {
            this.keep = keep;
        }

        public Integer getEverySteps() {
            return everySteps;
        }

        public void setEverySteps(Integer everySteps) {
            this.everySteps = everySteps;
        }
    }
}
