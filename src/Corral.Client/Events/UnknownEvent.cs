namespace Corral.Client.Events;

/// <summary>An event this version of the client does not know (a newer server): see <see cref="CorralEvent.Name"/> and <see cref="CorralEvent.Data"/>.</summary>
public sealed record UnknownEvent : CorralEvent;
