export function Logo({ size = 28 }: { size?: number }) {
  return (
    <svg width={size} height={size} viewBox="0 0 32 32" aria-hidden="true">
      <rect width="32" height="32" rx="6" fill="#228be6" />
      <path d="M9 8h9a6 6 0 0 1 6 6v4a6 6 0 0 1-6 6H9z" fill="none" stroke="#fff" strokeWidth="3" />
    </svg>
  );
}
