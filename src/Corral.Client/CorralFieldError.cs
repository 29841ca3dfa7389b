namespace Corral.Client;

/// <summary>One field of a request the server refused, and why.</summary>
/// <param name="Field">The field's path, e.g. <c>limits.timeoutSeconds</c>.</param>
/// <param name="Message">What is wrong with it.</param>
public sealed record CorralFieldError(string Field, string Message);
