import {
  MantineProvider,
  Modal,
  Notification,
  createTheme,
  defaultVariantColorsResolver,
  type CSSVariablesResolver,
  type VariantColorsResolver,
} from "@mantine/core";
import { Notifications } from "@mantine/notifications";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { RouterProvider, createBrowserRouter } from "react-router";
import { ApiError } from "./api/problem";
import { routes } from "./routes";

// Light variants (badges, active links, soft buttons) put shade-6 text on a pale tint, under
// 4.5:1; shade 9 darkened a third reads at AA contrast for every palette colour (green and
// yellow need the darkening).
const accessibleVariants: VariantColorsResolver = (input) => {
  const colors = defaultVariantColorsResolver(input);
  if (input.variant === "light" || input.variant === "subtle") {
    const name = input.color && !input.color.includes(".") ? input.color : input.theme.primaryColor;
    if (name in input.theme.colors) {
      return { ...colors, color: `color-mix(in srgb, var(--mantine-color-${name}-9), black 35%)` };
    }
  }
  return colors;
};

const theme = createTheme({
  variantColorResolver: accessibleVariants,
  // Filled light colours (yellow, say) get dark text instead of white.
  autoContrast: true,
  components: {
    Modal: Modal.extend({ defaultProps: { closeButtonProps: { "aria-label": "Close" } } }),
    Notification: Notification.extend({ defaultProps: { closeButtonProps: { "aria-label": "Dismiss" } } }),
  },
  primaryColor: "blue",
  // Shade 8 keeps text and filled controls at WCAG AA contrast on white.
  primaryShade: 8,
  fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
  headings: { fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" },
});

// Secondary text at WCAG AA contrast: Mantine's default grey is lighter than 4.5:1 on white.
const accessibleColors: CSSVariablesResolver = () => ({
  variables: {},
  light: { "--mantine-color-dimmed": "var(--mantine-color-gray-7)" },
  dark: {},
});

export const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      staleTime: 30_000,
      // A problem the server meant (404, 403) is not worth asking again.
      retry: (count, err) => !(err instanceof ApiError && err.status < 500) && count < 2,
      refetchOnWindowFocus: false,
    },
  },
});

const router = createBrowserRouter(routes);

export function App() {
  return (
    <MantineProvider theme={theme} cssVariablesResolver={accessibleColors}>
      <Notifications position="top-right" />
      <QueryClientProvider client={queryClient}>
        <RouterProvider router={router} />
      </QueryClientProvider>
    </MantineProvider>
  );
}
