global using Xunit;

// The cluster tests start silos and time-outs; on a 2-core machine they run one collection at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
