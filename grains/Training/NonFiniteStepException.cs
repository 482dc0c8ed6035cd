namespace RAE.Grains.Training;

/// <summary>A step whose loss or gradient norm was NaN/Inf: its update was skipped and the job fails without retrying.</summary>
internal sealed class NonFiniteStepException(string message) : Exception(message);
