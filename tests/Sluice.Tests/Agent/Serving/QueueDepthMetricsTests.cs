using Sluice.Agent.Serving;

namespace Sluice.Tests.Agent.Serving;

public sealed class QueueDepthMetricsTests
{
    /// <summary>An excerpt of vLLM 0.6's /metrics (two models' label sets would add up).</summary>
    public const string Vllm = """
        # HELP vllm:num_requests_running Number of requests currently running on GPU.
        # TYPE vllm:num_requests_running gauge
        vllm:num_requests_running{model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.0
        # HELP vllm:num_requests_swapped Number of requests swapped to CPU.
        # TYPE vllm:num_requests_swapped gauge
        vllm:num_requests_swapped{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
        # HELP vllm:num_requests_waiting Number of requests waiting to be processed.
        # TYPE vllm:num_requests_waiting gauge
        vllm:num_requests_waiting{model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
        # HELP vllm:num_requests_waiting_by_reason Not the queue itself.
        vllm:num_requests_waiting_by_reason{model_name="meta-llama/Llama-3.1-8B-Instruct",reason="capacity"} 99.0
        # HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
        # TYPE vllm:gpu_cache_usage_perc gauge
        vllm:gpu_cache_usage_perc{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.83
        """;

    /// <summary>llama.cpp server's /metrics (llama-server --metrics).</summary>
    public const string LlamaCpp = """
        # HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
        # TYPE llamacpp:prompt_tokens_total counter
        llamacpp:prompt_tokens_total 4011
        # HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
        # TYPE llamacpp:tokens_predicted_total counter
        llamacpp:tokens_predicted_total 20333
        # HELP llamacpp:requests_processing Number of request processing.
        # TYPE llamacpp:requests_processing gauge
        llamacpp:requests_processing 4
        # HELP llamacpp:requests_deferred Number of request deferred.
        # TYPE llamacpp:requests_deferred gauge
        llamacpp:requests_deferred 2
        """;

    [Fact]
    public void vLLMs_waiting_requests_are_the_queue_summed_over_models()
    {
        Assert.Equal(7, QueueDepthMetrics.Parse(Vllm));
        Assert.Equal(10, QueueDepthMetrics.Parse(Vllm + "\nvllm:num_requests_waiting{model_name=\"other\"} 3.0 1732780800000\n"));
    }

    [Fact]
    public void llama_cpps_deferred_requests_are_the_queue()
    {
        Assert.Equal(2, QueueDepthMetrics.Parse(LlamaCpp));
    }

    [Theory]
    [InlineData("")]
    [InlineData("llamacpp:requests_processing 4\n")]
    [InlineData("vllm:num_requests_waiting NaN\n")]
    [InlineData("vllm:num_requests_waiting -3\n")]
    [InlineData("vllm:num_requests_waiting{model_name=\"m\" 5\n")]
    [InlineData("<html>not metrics</html>")]
    public void Text_without_a_sensible_queue_figure_gives_none(string text)
    {
        Assert.Null(QueueDepthMetrics.Parse(text));
    }
}
