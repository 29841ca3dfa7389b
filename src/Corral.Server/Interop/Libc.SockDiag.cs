using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Corral.Server.Interop;

/// <summary>
/// The kernel's socket diagnostics (<c>NETLINK_SOCK_DIAG</c>, as <c>ss</c> uses them): one TCP socket looked up by its
/// four addresses in the kernel's hash of connections, in constant time where reading <c>/proc/net/tcp</c> walks every
/// bucket of that hash (about 7 ms on a host with 262,144 of them, however few sockets are open).
/// </summary>
internal static partial class Libc
{
    private const int AF_NETLINK = 16, SOCK_DGRAM = 2, SOCK_CLOEXEC = 0x80000, NETLINK_SOCK_DIAG = 4;
    private const ushort SOCK_DIAG_BY_FAMILY = 20, NLMSG_ERROR = 2, NLM_F_REQUEST = 1;
    private const int MSG_DONTWAIT = 0x40;
    private const byte IPPROTO_TCP = 6, AF_INET = 2, AF_INET6 = 10;

    // struct nlmsghdr (16 bytes), then struct inet_diag_req_v2 (8 bytes and a 48-byte inet_diag_sockid).
    private const int HeaderSize = 16, RequestSize = HeaderSize + 8 + 48;
    // In the answer, struct inet_diag_msg after the header: family, state, timer, retrans, the sockid, expires,
    // rqueue, wqueue, uid, inode.
    private const int AnswerUid = HeaderSize + 4 + 48 + 12, AnswerInode = AnswerUid + 4, AnswerSize = AnswerInode + 4;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint send(int fd, ReadOnlySpan<byte> buffer, nint length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint recv(int fd, Span<byte> buffer, nint length, int flags);

    /// <summary>What the kernel said of one socket.</summary>
    public enum SocketAnswer
    {
        /// <summary>It has the socket: its owner and inode are set.</summary>
        Found,
        /// <summary>No such socket (ENOENT; also what a kernel without TCP socket diagnostics answers).</summary>
        Absent,
        /// <summary>The kernel could not be asked, or answered something else.</summary>
        Failed,
    }

    /// <summary>
    /// The uid and inode of the TCP socket whose local address is <paramref name="local"/> and remote address
    /// <paramref name="remote"/> (both IPv4 or both IPv6). A socket its process closed (time-wait) is found with inode 0.
    /// </summary>
    public static SocketAnswer TcpSocket(IPEndPoint local, IPEndPoint remote, out uint uid, out ulong inode)
    {
        uid = 0;
        inode = 0;
        if (local.AddressFamily != remote.AddressFamily)
            return SocketAnswer.Failed;
        Span<byte> request = stackalloc byte[RequestSize];
        request.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(request, RequestSize); // netlink headers are in the host's order: x64, arm64
        BinaryPrimitives.WriteUInt16LittleEndian(request[4..], SOCK_DIAG_BY_FAMILY);
        BinaryPrimitives.WriteUInt16LittleEndian(request[6..], NLM_F_REQUEST); // no NLM_F_DUMP: an exact lookup
        request[HeaderSize] = local.AddressFamily == AddressFamily.InterNetwork ? AF_INET : AF_INET6;
        request[HeaderSize + 1] = IPPROTO_TCP;
        BinaryPrimitives.WriteUInt32LittleEndian(request[(HeaderSize + 4)..], uint.MaxValue); // every state
        var id = request[(HeaderSize + 8)..];
        BinaryPrimitives.WriteUInt16BigEndian(id, (ushort)local.Port);
        BinaryPrimitives.WriteUInt16BigEndian(id[2..], (ushort)remote.Port);
        if (!local.Address.TryWriteBytes(id[4..20], out _) || !remote.Address.TryWriteBytes(id[20..36], out _))
            return SocketAnswer.Failed;
        id[40..48].Fill(0xFF); // INET_DIAG_NOCOOKIE twice: found by its addresses alone

        int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (fd < 0)
            return SocketAnswer.Failed;
        try
        {
            Span<byte> answer = stackalloc byte[512];
            // The kernel answers while it takes the request, so the answer is queued before send returns.
            if (send(fd, request, RequestSize, 0) != RequestSize)
                return SocketAnswer.Failed;
            nint read = recv(fd, answer, answer.Length, MSG_DONTWAIT);
            if (read >= HeaderSize + 4 && BinaryPrimitives.ReadUInt16LittleEndian(answer[4..]) == NLMSG_ERROR)
                return BinaryPrimitives.ReadInt32LittleEndian(answer[HeaderSize..]) == -ENOENT ? SocketAnswer.Absent : SocketAnswer.Failed;
            if (read < AnswerSize || BinaryPrimitives.ReadUInt16LittleEndian(answer[4..]) != SOCK_DIAG_BY_FAMILY)
                return SocketAnswer.Failed;
            uid = BinaryPrimitives.ReadUInt32LittleEndian(answer[AnswerUid..]);
            inode = BinaryPrimitives.ReadUInt32LittleEndian(answer[AnswerInode..]);
            return SocketAnswer.Found;
        }
        finally
        {
            close(fd);
        }
    }
}
