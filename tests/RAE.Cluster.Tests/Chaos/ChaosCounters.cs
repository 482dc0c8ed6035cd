namespace RAE.Cluster.Tests.Chaos;

/// <summary>What the chaos did and what the cluster had to do about it, printed at the end of a run.</summary>
internal sealed class ChaosCounters
{
    private int _kills;
    private int _gracefulStops;
    private int _gracefulStopsThatNeededAKill;
    private int _storagePauses;
    private int _siloRestarts;
    private int _unplannedSiloExits;
    private int _clientRetries;
    private int _pinsMissed;

    public int Kills => _kills;
    public int GracefulStops => _gracefulStops;
    public int StoragePauses => _storagePauses;
    public int UnplannedSiloExits => _unplannedSiloExits;

    public void Kill() => Interlocked.Increment(ref _kills);
    public void GracefulStop(bool stoppedByItself)
    {
        Interlocked.Increment(ref _gracefulStops);
        if (!stoppedByItself) Interlocked.Increment(ref _gracefulStopsThatNeededAKill);
    }
    public void StoragePause() => Interlocked.Increment(ref _storagePauses);
    public void SiloRestart() => Interlocked.Increment(ref _siloRestarts);
    public void UnplannedSiloExit() => Interlocked.Increment(ref _unplannedSiloExits);
    public void ClientRetry() => Interlocked.Increment(ref _clientRetries);
    public void PinMissed() => Interlocked.Increment(ref _pinsMissed);

    public string Summary(IReadOnlyCollection<TrainingOutcome> training, IReadOnlyCollection<EncodeOutcome> encode, IReadOnlyCollection<SamplingOutcome> sampling,
        IReadOnlyCollection<PinnedSamplingOutcome> pinned) =>
        $"chaos: {_kills} kill(s) -9, {_gracefulStops} graceful stop(s) ({_gracefulStopsThatNeededAKill} needed a kill), "
        + $"{_storagePauses} storage pause(s), {_siloRestarts} silo restart(s), {_unplannedSiloExits} unplanned silo exit(s); "
        + $"jobs: {training.Count} training, {encode.Count} encode, {sampling.Count} sampling, {pinned.Count} pinned sampling "
        + $"({pinned.Count(p => p.NewestSourceStepSeen > ChaosWorkload.PinnedStep + 2 * ChaosWorkload.CheckpointInterval)} ran past the pinned step's retention, "
        + $"{_pinsMissed} training job(s) passed the step before a pin); "
        + $"restores: {training.Sum(t => t.Status.Recoveries)} training group re-form(s) "
        + $"({training.Count(t => t.Status.RestoredFromStep is not null)} job(s) restored from a checkpoint), "
        + $"{encode.Sum(e => e.Status.Resumptions)} encode resumption(s), {sampling.Sum(s => s.Status.Resumptions) + pinned.Sum(p => p.Status.Resumptions)} sampling resumption(s); "
        + $"retries: {training.Sum(t => t.Status.FailedAttempts)} failed training attempt(s), {_clientRetries} client call retr(ies)";
}
