namespace Corral.Testing.Support.Guest;

/// <summary>A guest cannot be booted on this machine (no QEMU and no way to install it, no kernel package…): the reason, for a skip.</summary>
public sealed class GuestUnavailableException(string reason) : Exception(reason);
