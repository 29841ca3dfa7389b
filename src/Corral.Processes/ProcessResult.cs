using System.Text;

namespace Corral.Processes;

/// <summary>The outcome of a tree together with its captured output.</summary>
/// <param name="Outcome">What happened.</param>
/// <param name="StandardOutputBytes">Captured standard output, raw.</param>
/// <param name="StandardErrorBytes">Captured standard error, raw.</param>
public sealed record ProcessResult(ProcessOutcome Outcome, ReadOnlyMemory<byte> StandardOutputBytes, ReadOnlyMemory<byte> StandardErrorBytes)
{
    /// <summary>Captured standard output decoded as UTF-8.</summary>
    public string StandardOutput => Encoding.UTF8.GetString(StandardOutputBytes.Span);

    /// <summary>Captured standard error decoded as UTF-8.</summary>
    public string StandardError => Encoding.UTF8.GetString(StandardErrorBytes.Span);
}
