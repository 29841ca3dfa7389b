using System.Runtime.Versioning;

// corral and these tests are Linux-only: they read /proc and use Linux signals and pipes.
[assembly: SupportedOSPlatform("linux")]
