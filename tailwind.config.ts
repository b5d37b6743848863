import type { Config } from 'tailwindcss';

// Loaded by app/tailwind.css through @config. A dense ops look: system fonts, tight spacing.
export default {
  content: ['./app/**/*.{ts,tsx}'],
  theme: {
    extend: {
      fontFamily: {
        sans: ['ui-sans-serif', 'system-ui', '-apple-system', 'Segoe UI', 'Roboto', 'sans-serif'],
        mono: ['ui-monospace', 'SFMono-Regular', 'Menlo', 'Consolas', 'monospace'],
      },
      colors: {
        ink: { DEFAULT: '#0f172a', muted: '#475569', faint: '#94a3b8' },
      },
    },
  },
} satisfies Config;
