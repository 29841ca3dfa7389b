using System.Text.Json;
using Corral.Processes;
using Corral.Server.Api;
using Corral.Server.Internal.Admission;

namespace Corral.Server.Telemetry;

/// <summary>
/// The names telemetry speaks in: the meter and activity source, and label values spelt as the API spells them
/// (<c>timedOut</c>, <c>pipeHolder</c>, <c>agent_not_available</c>), so a dashboard query and a JSON record agree.
/// </summary>
internal static class TelemetryNames
{
    /// <summary>The <see cref="System.Diagnostics.Metrics.Meter"/> and <see cref="System.Diagnostics.ActivitySource"/> name.</summary>
    public const string Source = "Corral.Server";

    public static string Status(TaskState state) => JsonNamingPolicy.CamelCase.ConvertName(state.ToString());

    public static string FoundBy(FoundBy foundBy) => JsonNamingPolicy.CamelCase.ConvertName(foundBy.ToString());

    public static string Limit(ResourceLimitKind kind) => JsonNamingPolicy.CamelCase.ConvertName(kind.ToString());

    /// <summary>A refusal's code as the API's ProblemDetails carry it (<c>busy</c>, <c>invalid_request</c>…).</summary>
    public static string Refusal(RefusalCode code) => JsonNamingPolicy.SnakeCaseLower.ConvertName(code.ToString());

    /// <summary>The processes teardown killed other than the direct child: what escaped it or was left behind by it.</summary>
    public static int Escapees(ProcessOutcome process) => process.Killed.Count(k => k.Pid != process.Pid);
}
