namespace Sluice.Deployments;

/// <summary>The engines a deployment can run (<see cref="Deployment.Engine"/>).</summary>
public static class DeploymentEngines
{
    /// <summary><c>sluice engine llama</c>: a GGUF file on the machine, served by the built-in engine (LLamaSharp).</summary>
    public const string BuiltInLlama = "builtin-llama";

    /// <summary><c>sluice engine embeddings</c>: the built-in all-MiniLM-L6-v2 sentence embeddings engine.</summary>
    public const string BuiltInEmbeddings = "builtin-embeddings";

    public const string Vllm = "vllm";

    /// <summary>llama.cpp's <c>llama-server</c>.</summary>
    public const string LlamaCpp = "llama-cpp";

    public const string Ollama = "ollama";

    /// <summary>Hugging Face Text Generation Inference (legacy: in maintenance mode upstream).</summary>
    public const string Tgi = "tgi";

    /// <summary>Any command that serves the OpenAI API on <c>{port}</c>.</summary>
    public const string CustomCommand = "custom-command";

    /// <summary>Any container image that serves the OpenAI API on its container port.</summary>
    public const string CustomContainer = "custom-container";

    public static readonly IReadOnlyList<string> All = [BuiltInLlama, BuiltInEmbeddings, Vllm, LlamaCpp, Ollama, Tgi, CustomCommand, CustomContainer];
}

/// <summary>How a deployment's <see cref="Deployment.Artifact"/> is found.</summary>
public static class ArtifactKinds
{
    /// <summary>A file or directory on the machine (checked by the agent when the replica starts).</summary>
    public const string Path = "path";

    /// <summary>An id the engine fetches itself (a Hugging Face repo for vLLM or TGI, an Ollama tag).</summary>
    public const string Hub = "hub";

    /// <summary>A model produced by a fine-tuning job (the fine-tuning issue).</summary>
    public const string FineTuned = "fine_tuned";

    /// <summary>No artifact: a custom command or container brings its own model.</summary>
    public const string None = "none";
}

/// <summary><see cref="Deployment.Status"/>.</summary>
public static class DeploymentStatuses
{
    /// <summary>Created or scaling up; no replica ready yet.</summary>
    public const string Pending = "pending";

    /// <summary>At least one replica serves.</summary>
    public const string Ready = "ready";

    /// <summary>Serverless and idle: no replica; the next request starts one (a cold start).</summary>
    public const string ScaledToZero = "scaled_to_zero";

    /// <summary>Replicas could not start (engine failed, artifact missing, no machine fits); requests get a 503 that says so.</summary>
    public const string Failed = "failed";

    /// <summary>Stopped because the organization's wallet could not cover its GPU time; it starts again when funded and updated.</summary>
    public const string Suspended = "suspended";

    /// <summary>Deleted; replicas are being stopped.</summary>
    public const string Deleting = "deleting";
}

/// <summary><see cref="DeploymentReplica.State"/>.</summary>
public static class ReplicaStates
{
    /// <summary>Its task is placed on a machine; the engine is starting (not yet ready).</summary>
    public const string Starting = "starting";

    /// <summary>Its task reported ready: requests may go to it.</summary>
    public const string Ready = "ready";

    /// <summary>Taken out of routing (scale-down, rollout, delete); its task stops once requests in flight finish.</summary>
    public const string Draining = "draining";

    /// <summary>Its task is stopped or its machine was lost. Final.</summary>
    public const string Stopped = "stopped";

    /// <summary>Its task failed to start or kept failing. Final.</summary>
    public const string Failed = "failed";
}

/// <summary><see cref="DeploymentEvent.Kind"/>.</summary>
public static class DeploymentEventKinds
{
    public const string Created = "created";
    public const string Updated = "updated";
    public const string Deleted = "deleted";
    public const string Published = "published";
    public const string Unpublished = "unpublished";

    /// <summary>An autoscaling decision, with its inputs (in flight, queue depth, windows, target, result).</summary>
    public const string Scaled = "scaled";

    /// <summary>A request arrived with no replica: the deployment wakes from zero.</summary>
    public const string ColdStart = "cold_start";

    public const string ReplicaPlaced = "replica_placed";
    public const string ReplicaReady = "replica_ready";
    public const string ReplicaDraining = "replica_draining";
    public const string ReplicaStopped = "replica_stopped";
    public const string ReplicaFailed = "replica_failed";

    /// <summary>A replica's machine was lost; the replica is placed again elsewhere.</summary>
    public const string ReplicaLost = "replica_lost";

    /// <summary>No machine fits a replica (the reason names what is missing).</summary>
    public const string Unschedulable = "unschedulable";

    public const string RolloutStarted = "rollout_started";
    public const string RolloutCompleted = "rollout_completed";
    public const string Failed = "failed";

    /// <summary>GPU time billing: low balance warned, scale-up refused, suspended for lack of funds.</summary>
    public const string BillingWarning = "billing_warning";
    public const string ScaleUpRefused = "scale_up_refused";
    public const string Suspended = "suspended";
}
