namespace RAE.GrainInterfaces;

/// <summary>How a data-parallel group moves its gradients.</summary>
public enum CollectiveTransport
{
    /// <summary>Ring all-reduce over direct TCP connections between the ranks; Orleans only for rendezvous and abort.</summary>
    Ring,

    /// <summary>Every chunk through the collective group grain (a star over Orleans messages).</summary>
    Orleans,
}
