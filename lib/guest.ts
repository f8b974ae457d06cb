/**
 * Facts about the guest filesystem that every smolvm image shares. Commands run as root, so the
 * guest's home is root's: the agent's default working directory, SSH's authorized_keys, and the
 * natural place for a user's files.
 */
export const GUEST_HOME = "/root";
